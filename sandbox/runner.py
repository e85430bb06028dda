"""The offline sandbox: the real bot (``bot.app.App``, unchanged) talking to a local
Bot API server, an MQTT broker with simulated plugs, a demo database, and a web page
that plays the user, the merchant and the admins' group.

Started by ``python -m bot`` when no BOT_TOKEN is set (also ``python -m sandbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from bot.app import App
from bot.settings import Settings, SettingsError, load_settings
from migrations.runner import upgrade
from sandbox import demo
from sandbox.botapi import FakeBotAPI
from sandbox.broker import Broker, start_broker
from sandbox.devices import PlugFarm
from sandbox.env import setting
from sandbox.web import WebPage

log = logging.getLogger(__name__)

TOKEN_PREFIX = "123456:SANDBOX-"  # + a random part per run: web pages cannot guess it
BOT_USERNAME = "chargeshare_sandbox_bot"
DEFAULT_DATABASE = Path("data/sandbox.db")
# a provider token of the test shape BotFather gives (<id>:TEST:<secret>), known only
# to the sandbox's own Bot API server
SANDBOX_PROVIDER_TOKEN = "1234567890:TEST:chargeshare-sandbox"


def fresh_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class Sandbox:
    """Everything the sandbox runs, started and stopped together (in one event loop)."""

    def __init__(
        self,
        *,
        port: int = 8088,
        host: str = "127.0.0.1",
        database: Path = DEFAULT_DATABASE,
        broker: str | None = None,
        env_file: str | None = ".env",
        tele_period: float = 2.0,
        fill_seconds: float = 90.0,
        **settings: Any,
    ) -> None:
        self.port = port
        self.host = host
        self.database = database
        self.broker_kind = broker
        self.env_file = env_file
        self.tele_period = tele_period
        # how long the demo plug that "fills up" charges before its power falls
        self.fill_seconds = fill_seconds
        self.overrides = settings
        self.token = TOKEN_PREFIX + secrets.token_urlsafe(16)
        self.api = FakeBotAPI(token=self.token, bot_username=BOT_USERNAME, bot_id=123456)
        self.api.bot_user["first_name"] = "ChargeShare"
        self.broker: Broker | None = None
        self.app: App | None = None
        self.farm: PlugFarm | None = None
        self.web: WebPage | None = None
        self.settings: Settings | None = None
        self._bot_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.web.url if self.web else ""

    async def start(self) -> None:
        api = self.api
        await api.start()
        for person in demo.PEOPLE:
            api.add_user(person.id, person.name, language_code=person.language)
        api.add_group(demo.GROUP_ID, demo.GROUP_TITLE)

        self.broker = await start_broker(self.broker_kind)

        # a fresh demo world each time: the Bot API server's files live in memory
        fresh_database(self.database)
        overrides: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{self.database}",
            "mqtt_username": "",
            "mqtt_password": "",
            "orders_chat_id": "",
            "redis_url": "",
            "webhook_url": "",
            # the local Bot API server takes any provider token, so the demo pays in
            # Telegram (prepaid mode) with its test card; never a real provider's
            "payment_provider_token": SANDBOX_PROVIDER_TOKEN,
            **self.overrides,
            # what makes it the sandbox
            "bot_token": self.token,
            "telegram_api_url": api.url,
            "mqtt_url": self.broker.url,
            "moderation_chat_id": demo.GROUP_ID,
            "admin_ids": ",".join(str(admin.id) for admin in demo.ADMINS),
        }
        try:
            self.settings = load_settings(_env_file=self.env_file, **overrides)
        except SettingsError as error:
            raise SystemExit(f"chargeshare sandbox: configuration error: {error}") from None

        self.app = App(self.settings)
        await upgrade(self.app.engine)

        def store_photo(png: bytes) -> str:
            return str(api.store_photo(png)[-1]["file_id"])

        await demo.seed(self.app.open_db, store_photo)

        self.farm = PlugFarm(
            self.broker.url,
            self.app.open_db,
            tele_period=self.tele_period,
            fill_seconds=self.fill_seconds,
        )
        await self.farm.add_spare(*demo.NEW_PLUGS)
        await self.farm.sync()
        self.farm.start()

        self._bot_task = asyncio.create_task(self.app.run_polling(handle_signals=False))
        poller = asyncio.ensure_future(api.wait_for_poller(timeout=30))
        await asyncio.wait({poller, self._bot_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._bot_task.done():
            poller.cancel()
            self._bot_task.result()  # start-up failed: say why
            raise RuntimeError("the bot stopped during start-up")
        await poller

        self.web = WebPage(api, self.farm, self.app.open_db, timezone=self.settings.timezone)
        await self.web.start(self.host, self.port)

    async def wait(self) -> None:
        """Until the bot stops by itself (an error) or the task is cancelled."""
        assert self._bot_task is not None
        await self._bot_task

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
        if self.app is not None and self._bot_task is not None:
            with contextlib.suppress(RuntimeError):
                await self.app.dispatcher.stop_polling()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._bot_task, 20)
        if self.farm is not None:
            await self.farm.stop()
        if self.broker is not None:
            await self.broker.stop()
        await self.api.stop()


def sandbox_port() -> int:
    """SANDBOX_PORT from the environment or .env (default 8088; 0 = a free port)."""
    raw = (setting("SANDBOX_PORT") or "").strip() or "8088"
    if not raw.isdigit() or int(raw) > 65535:
        raise SystemExit(f"chargeshare: configuration error: SANDBOX_PORT {raw!r} is not a port")
    return int(raw)


async def serve(port: int) -> None:
    sandbox = Sandbox(port=port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await sandbox.start()
        assert sandbox.broker is not None
        print(
            "\nChargeShare sandbox (no BOT_TOKEN set): the real bot, a local Bot API server,\n"
            f"an MQTT broker ({sandbox.broker.kind}) and simulated plugs. Open the web page:\n\n"
            f"    {sandbox.url}/\n\n"
            "Set BOT_TOKEN (environment or .env) to run the real bot. Ctrl-C stops.\n",
            flush=True,
        )
        waiter = asyncio.ensure_future(stop.wait())
        bot_task = asyncio.ensure_future(sandbox.wait())
        done, _ = await asyncio.wait({waiter, bot_task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if bot_task in done and bot_task.exception() is not None:
            raise bot_task.exception()  # type: ignore[misc]
    finally:
        await sandbox.stop()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiohttp.access", "aiogram.event"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    port = sandbox_port()
    try:
        asyncio.run(serve(port))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        sys.exit(f"chargeshare sandbox: {error}")
