"""Webhook mode: aiogram's aiohttp server behind a load balancer, with the secret
token checked, plus /healthz, /readyz and /metrics for the orchestrator.

Updates are handled before the answer (not in the background): an instance that
dies mid-update leaves it unanswered, so Telegram delivers it again to another.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class CheckedRequestHandler(SimpleRequestHandler):
    """aiogram's handler that also refuses a body that is not an Update (400),
    compares the secret as bytes (a non-ASCII header is a 401, not a crash), and
    handles at most ``concurrency`` updates at once (the database pool's size)."""

    def __init__(self, *args: Any, concurrency: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(concurrency)

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        if not self.secret_token:
            return True
        return hmac.compare_digest(
            telegram_secret_token.encode("utf-8", "surrogateescape"),
            self.secret_token.encode(),
        )

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            return web.Response(status=401, text="Unauthorized")
        try:
            body = await request.json()
            update = Update.model_validate(body, context={"bot": bot})
        except (ValueError, ValidationError):
            return web.Response(status=400, text="Bad Request: the body is not an Update")
        async with self._slots:
            result = await self.dispatcher.feed_webhook_update(bot, update, **self.data)
        return web.Response(body=self._build_response_writer(bot=bot, result=result))


def listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "0.0.0.0", int(port)


class Probes:
    """Liveness, readiness and metrics endpoints."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: Metrics,
        mqtt_connected: Any,
        mqtt_reconnects: Any,
        redis: Any | None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._mqtt_connected = mqtt_connected
        self._mqtt_reconnects = mqtt_reconnects
        self._redis = redis

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2), self._sessions() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # any failure means "not ready", with the reason
            checks["database"] = f"down: {type(error).__name__}"
        if self._redis is not None:
            try:
                async with asyncio.timeout(2):
                    await self._redis.ping()
                checks["redis"] = "ok"
            except Exception as error:
                checks["redis"] = f"down: {type(error).__name__}"
        checks["mqtt"] = "ok" if self._mqtt_connected() else "down"
        ready = all(value == "ok" for value in checks.values())
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps(checks),
            content_type="application/json",
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self._metrics.render(self._sessions, self._mqtt_reconnects())
        response = web.Response(body=body)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    def register(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)


async def serve(
    bot: Bot,
    dispatcher: Dispatcher,
    probes: Probes,
    *,
    url: str,
    secret: str,
    listen: str,
    stop: asyncio.Event,
    concurrency: int,
) -> None:
    """Serve the webhook until ``stop`` is set (or SIGINT/SIGTERM)."""
    app = web.Application()
    CheckedRequestHandler(dispatcher, bot, secret_token=secret, concurrency=concurrency).register(
        app, path=urlsplit(url).path or "/"
    )
    probes.register(app)
    setup_application(app, dispatcher, bot=bot)  # the dispatcher's start-up and shut-down
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    host, port = listen_address(listen)
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("webhook: listening on %s:%s, path %s", host, port, urlsplit(url).path or "/")
    await bot.set_webhook(
        url,
        secret_token=secret,
        allowed_updates=dispatcher.resolve_used_update_types(),
        drop_pending_updates=False,
        # Telegram opens at most this many calls at once (to the proxy, for all instances)
        max_connections=concurrency * 2,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        # the webhook stays set: the other instances keep serving it
        await runner.cleanup()
