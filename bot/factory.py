"""Factories: the one place where the bot's parts are built and joined."""

from urllib.parse import unquote, urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.fsm.strategy import FSMStrategy
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from redis.asyncio import Redis

from bot.fsm_storage import DestinyKeyBuilder, SqlStorage
from bot.isolation import RenewedRedisEventIsolation
from bot.metrics import Metrics, MetricsMiddleware
from bot.middlewares import DbSessionMiddleware, OneFsmWritePerUpdate, UserContextMiddleware
from bot.outbox_sender import OutboxSender
from bot.request_middlewares import (
    AnsweredPresses,
    KeepResponseModels,
    NotModifiedIsSuccess,
    WaitOutFloodControl,
)
from bot.settings import Settings, ui_config
from handlers import build_root_router
from hardware_bridge.dynsec import DynSecAccounts
from hardware_bridge.port import PowerSwitch
from services.charging_control import ChargingControl
from services.pairing import Pairing
from services.tx import OpenDb
from ui.i18n import LANGUAGES, translator
from ui.owed import OwedCalls

PRIVATE_COMMANDS = (
    "start",
    "find",
    "bookings",
    "stop",
    "code",
    "newlisting",
    "listings",
    "language",
    "help",
    "cancel",
    # money (#14)
    "wallet",
    "earnings",
)
GROUP_COMMANDS = ("pending", "sessions", "cancel", "report", "payout")


def create_bot(
    settings: Settings,
    *,
    timeout: float | None = None,
    wait_out_flood_control: bool = True,
    presses: AnsweredPresses | None = None,
) -> Bot:
    """``timeout``: per request (the outbox's bot keeps it under its claim's lease).
    ``wait_out_flood_control``: a 429 is waited out and retried within the call; the
    outbox's bot does without, as it reschedules the message itself (a wait inside
    the request would outlast its claim). ``presses``: where the handlers' bot notes
    the presses it answered (the same goes to ``create_dispatcher``)."""
    api = (
        PRODUCTION
        if settings.telegram_api_url == PRODUCTION.base.split("/bot")[0]
        else TelegramAPIServer.from_base(settings.telegram_api_url)
    )
    http = AiohttpSession(api=api) if timeout is None else AiohttpSession(api=api, timeout=timeout)
    http.middleware(KeepResponseModels())
    http.middleware(NotModifiedIsSuccess())
    if wait_out_flood_control:
        http.middleware(WaitOutFloodControl())
    if presses is not None:
        http.middleware(presses)
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=http,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def create_dispatcher(
    settings: Settings,
    open_db: OpenDb,
    outbox_sender: OutboxSender | None = None,
    storage: BaseStorage | None = None,
    charging: ChargingControl | None = None,
    metrics: Metrics | None = None,
    redis: Redis | None = None,
    presses: AnsweredPresses | None = None,
    pairing: Pairing | None = None,
) -> Dispatcher:
    isolation: BaseEventIsolation
    if redis is not None:
        # several instances: a conversation and its per-user lock live in Redis, so
        # a user's next update may land on any instance
        storage = storage or RedisStorage(redis, key_builder=DestinyKeyBuilder())
        isolation = RenewedRedisEventIsolation(redis)
    else:
        isolation = SimpleEventIsolation()
    # in-memory copies (conversations, users) are only true while one process owns
    # them: webhook mode may run as several instances
    cache_size = 0 if settings.webhook_url else 20_000
    if storage is None:
        storage = SqlStorage(open_db, cache_size=cache_size)
    wake = outbox_sender.wake if outbox_sender else None
    dp = Dispatcher(
        storage=storage,
        # per chat and user, so an admin's reason in the group is their own
        fsm_strategy=FSMStrategy.USER_IN_CHAT,
        # one update at a time per user: a double press cannot race itself
        events_isolation=isolation,
        config=ui_config(settings),
        charging=charging,
        pairing=pairing,
        metrics=metrics,
        # replies Telegram refuses for now go to the outbox (handlers/errors.py)
        owed=OwedCalls(open_db, wake),
        # which presses were answered already (a refusal after that edits the message)
        answered=presses if presses is not None else AnsweredPresses(),
    )
    if metrics is not None:
        dp.update.outer_middleware(MetricsMiddleware(metrics))
    if isinstance(storage, SqlStorage):
        dp.update.outer_middleware(OneFsmWritePerUpdate(storage))
    dp.update.outer_middleware(DbSessionMiddleware(open_db, after=wake))
    dp.update.outer_middleware(UserContextMiddleware(settings.group_language, cache_size))
    dp.include_router(build_root_router(settings.moderation_chat_id))
    return dp


def create_pairing(settings: Settings, switch: PowerSwitch) -> Pairing:
    """Pairing plugs over the bridge; with MQTT_DYNSEC, each plug's broker account is
    made by the bot (mosquitto's dynamic security plugin)."""
    broker = urlsplit(settings.mqtt_url)
    accounts: DynSecAccounts | None = None
    if settings.mqtt_dynsec:
        username = (
            settings.mqtt_dynsec_username
            or settings.mqtt_username
            or (unquote(broker.username) if broker.username else "")
        )
        secret = settings.mqtt_dynsec_password or settings.mqtt_password
        password = secret.get_secret_value() if secret else unquote(broker.password or "")
        accounts = DynSecAccounts(
            broker.hostname or "127.0.0.1", broker.port or 1883, username, password
        )
    return Pairing(
        switch,
        accounts=accounts,
        plug_host=settings.mqtt_plug_host or broker.hostname or "127.0.0.1",
        plug_port=settings.mqtt_plug_port,
        confirm_timeout=settings.device_confirm_seconds,
        pulse_seconds=settings.pair_pulse_seconds,
        button_timeout=settings.pair_button_seconds,
    )


async def set_commands(bot: Bot, settings: Settings) -> None:
    """Command menus in both languages, for private chats and the moderation group."""
    for language in LANGUAGES:
        t = translator(language)
        code = None if language == "en" else language
        await bot.set_my_commands(
            [BotCommand(command=c, description=t(f"command.{c}")) for c in PRIVATE_COMMANDS],
            scope=BotCommandScopeAllPrivateChats(),
            language_code=code,
        )
    t = translator(settings.group_language)
    await bot.set_my_commands(
        [BotCommand(command=c, description=t(f"command.{c}")) for c in GROUP_COMMANDS],
        scope=BotCommandScopeChat(chat_id=settings.moderation_chat_id),
    )
