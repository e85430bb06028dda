"""Running the bot: migrations, the outbox sender, the hardware bridge, timed work,
and long polling or (WEBHOOK_URL set) a webhook server for several instances."""

import asyncio
import contextlib
import gc
import logging
import os
import socket
from datetime import timedelta

from aiogram import Bot, Dispatcher
from redis.asyncio import Redis

from bot import webhook
from bot.factory import create_bot, create_dispatcher, create_pairing, set_commands
from bot.metrics import Metrics
from bot.outbox_sender import OutboxSender
from bot.request_middlewares import AnsweredPresses
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.update_claims import RedisUpdateClaims, SqlUpdateClaims, UpdateClaims
from hardware_bridge.bridge import Bridge
from hardware_bridge.mqtt import MqttClient
from migrations.runner import upgrade
from models.db import MAX_OVERFLOW, POOL_SIZE, create_engine, create_session_factory
from services import payments
from services.charging import ChargingRules
from services.charging_control import ChargingControl
from services.clock import utcnow

log = logging.getLogger(__name__)

OUTBOX_REQUEST_SECONDS = 10  # < services.outbox.CLAIM_SECONDS
# updates handled at once: one may hold two pooled database connections
CONCURRENT_UPDATES = (POOL_SIZE + MAX_OVERFLOW) // 2 - 1


class App:
    """The running bot's parts, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.open_db = create_session_factory(self.engine)
        # the presses the handlers' bot answered: a refusal after an answer edits instead
        self.presses = AnsweredPresses()
        self.bot: Bot = create_bot(settings, presses=self.presses)
        self.metrics = Metrics()
        # several instances share conversations and per-user locks through Redis
        self.redis: Redis | None = (
            Redis.from_url(settings.redis_url) if settings.redis_url else None
        )
        # its own HTTP session, with requests shorter than an outbox claim's lease, so a
        # stalled send cannot outlive the claim and be sent again by another instance
        # (and no waiting out of 429s inside a request: the sender reschedules the row)
        self.outbox_bot: Bot = create_bot(
            settings, timeout=OUTBOX_REQUEST_SECONDS, wait_out_flood_control=False
        )
        self.outbox = OutboxSender(
            self.outbox_bot,
            self.open_db,
            settings,
            rate_per_second=settings.outbox_rate_per_second,
        )
        self.bridge = Bridge(
            MqttClient(
                settings.mqtt_url,
                # the client id must differ between instances, or the broker kicks one
                f"chargeshare-{socket.gethostname()}-{os.getpid()}",
                username=settings.mqtt_username,
                password=(
                    settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
                ),
                share_group=settings.mqtt_share_group,
            )
        )
        self.charging = ChargingControl(
            self.open_db,
            self.bridge,
            ChargingRules(
                zone=settings.zone,
                platform_chat_id=settings.platform_chat_id,
                grace_before=timedelta(minutes=settings.start_grace_minutes),
                money=settings.money_rules,
            ),
            confirm_timeout=settings.device_confirm_seconds,
            offline_grace=settings.device_offline_grace_seconds,
            start_give_up=timedelta(seconds=settings.start_give_up_seconds),
            stop_give_up=timedelta(seconds=settings.stop_give_up_seconds),
            live_every=settings.charging_refresh_seconds,
            on_change=self.outbox.wake,
            shared_readings=bool(settings.mqtt_share_group),
        )
        # after every (re)connection: compare open sessions with their plugs, and finish
        # the starts and stops a dead process left from their plugs' answers
        self.bridge.client.add_connect_hook(self.charging.reconcile_all)
        self.scheduler = Scheduler(
            self.open_db,
            interval=settings.scheduler_interval_seconds,
            on_change=self.outbox.wake,
            jobs=[self.charging.tick, self._expire_unpaid],
        )
        self.pairing = create_pairing(settings, self.bridge)
        self.dispatcher: Dispatcher = create_dispatcher(
            settings,
            self.open_db,
            self.outbox,
            charging=self.charging,
            pairing=self.pairing,
            metrics=self.metrics,
            redis=self.redis,
            presses=self.presses,
        )
        self.stopping = asyncio.Event()  # webhook mode: set to stop serving

    async def _expire_unpaid(self) -> int:
        """Scheduler job: bookings not paid in time expire (the rider is told)."""
        async with self.open_db() as db:
            return await payments.expire_unpaid(db, utcnow())

    async def prepare(self) -> None:
        await upgrade(self.engine)  # the schema comes from migrations only
        me = await self.bot.get_me()
        log.info("bot @%s (id %s) ready", me.username, me.id)
        await set_commands(self.bot, self.settings)
        self.outbox.start()
        # not waited for: the bot serves everything else while the broker is away, and
        # each (re)connection reconciles open sessions with their plugs
        await self.bridge.start(wait=0)
        self.scheduler.start()
        # What start-up made (modules, pydantic and SQLAlchemy models) lives as long as
        # the process: kept out of the collector's full passes, which walked all of it
        # and stopped the bot for 100-250 ms each (docs/benchmarks.md, figure 3).
        gc.collect()
        gc.freeze()

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.charging.close()
        await self.bridge.stop()
        await self.outbox.stop()
        await self.dispatcher.storage.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.bot.session.close()
        await self.outbox_bot.session.close()
        await self.engine.dispose()

    async def run_polling(self, *, handle_signals: bool = True) -> None:
        try:
            await self.prepare()
            await self.bot.delete_webhook(drop_pending_updates=False)
            await self.dispatcher.start_polling(
                self.bot,
                allowed_updates=self.dispatcher.resolve_used_update_types(),
                handle_signals=handle_signals,
                close_bot_session=False,
                tasks_concurrency_limit=CONCURRENT_UPDATES,
            )
        finally:
            with contextlib.suppress(Exception):
                await self.close()

    async def run_webhook(self) -> None:
        """Serve WEBHOOK_URL's path on WEBHOOK_LISTEN (probes and metrics on
        METRICS_LISTEN) until ``stopping`` is set."""
        settings = self.settings
        assert settings.webhook_url and settings.webhook_secret
        try:
            await self.prepare()
            probes = webhook.Probes(
                self.open_db,
                self.metrics,
                mqtt_connected=lambda: self.bridge.client.connected,
                mqtt_reconnects=lambda: self.bridge.client.reconnects,
                redis=self.redis,
            )
            # a repeated delivery of an update acts once, whichever instance gets it
            claims: UpdateClaims = (
                RedisUpdateClaims(self.redis, namespace=str(self.bot.id))
                if self.redis is not None
                else SqlUpdateClaims(self.open_db)
            )
            await webhook.serve(
                self.bot,
                self.dispatcher,
                probes,
                url=settings.webhook_url,
                secret=settings.webhook_secret.get_secret_value(),
                listen=settings.webhook_listen,
                metrics_listen=settings.metrics_listen,
                stop=self.stopping,
                concurrency=CONCURRENT_UPDATES,
                claims=claims,
            )
        finally:
            with contextlib.suppress(Exception):
                await self.close()


async def run(settings: Settings) -> None:
    app = App(settings)
    if settings.webhook_url:
        await app.run_webhook()
    else:
        await app.run_polling()


def main() -> None:
    from bot.settings import SettingsError, load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(f"chargeshare: configuration error: {error}") from None
    asyncio.run(run(settings))
