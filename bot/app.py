"""Running the bot: migrations, the outbox sender, and long polling."""

import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher

from bot.factory import create_bot, create_dispatcher, set_commands
from bot.outbox_sender import OutboxSender
from bot.scheduler import Scheduler
from bot.settings import Settings
from migrations.runner import upgrade
from models.db import MAX_OVERFLOW, POOL_SIZE, create_engine, create_session_factory

log = logging.getLogger(__name__)


class App:
    """The running bot's parts, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.sessions = create_session_factory(self.engine)
        self.bot: Bot = create_bot(settings)
        self.outbox = OutboxSender(self.bot, self.sessions, settings)
        self.scheduler = Scheduler(self.sessions, on_change=self.outbox.wake)
        self.dispatcher: Dispatcher = create_dispatcher(settings, self.sessions, self.outbox)

    async def prepare(self) -> None:
        await upgrade(self.engine)  # the schema comes from migrations only
        me = await self.bot.get_me()
        log.info("bot @%s (id %s) ready", me.username, me.id)
        await set_commands(self.bot, self.settings)
        self.outbox.start()
        self.scheduler.start()

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.outbox.stop()
        await self.dispatcher.storage.close()
        await self.bot.session.close()
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
                tasks_concurrency_limit=(POOL_SIZE + MAX_OVERFLOW) // 2 - 1,
            )
        finally:
            with contextlib.suppress(Exception):
                await self.close()


async def run(settings: Settings) -> None:
    if settings.webhook_url:
        raise SystemExit(
            "WEBHOOK_URL is set, but webhook mode is not built yet: unset it to use polling"
        )
    await App(settings).run_polling()


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
