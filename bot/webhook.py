"""Webhook mode: aiogram's aiohttp server behind a load balancer, with the secret
token checked and each update acted on once; probes and metrics on a listener of
their own (METRICS_LISTEN, loopback by default), not on the public one.

Updates are handled before the answer (not in the background): an instance that
dies mid-update leaves it unanswered, so Telegram delivers it again to another.

The secret token is what stands between the internet and the bot's handlers (and
so the admins' actions): a call without it is refused before its body is read.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import text

from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.update_claims import Outcome, UpdateClaims
from services.tx import OpenDb

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's largest updates (a 4096-character message quoting another, with its
# entities) are tens of kilobytes; anything far larger is not from Telegram
MAX_BODY = 512 * 1024


class CheckedRequestHandler(SimpleRequestHandler):
    """aiogram's handler that also refuses a body that is not an Update (400, also
    when nested too deeply to parse) or too large (413), compares the secret as
    bytes (a non-ASCII header is a 401, not a crash), acts on each update id once
    (``claims``: a repeated delivery is answered and skipped), and handles at most
    ``concurrency`` updates at once (the database pool's size)."""

    def __init__(self, *args: Any, concurrency: int, claims: UpdateClaims, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(concurrency)
        self._claims = claims

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
            body = await request.read()  # at most MAX_BODY (the application's limit)
            update = Update.model_validate(json.loads(body), context={"bot": bot})
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="Request Entity Too Large")
        except (ValueError, ValidationError, RecursionError):
            # (RecursionError: JSON nested deeper than the parser goes)
            return web.Response(status=400, text="Bad Request: the body is not an Update")
        outcome, result = await self._claims.once(
            update.update_id, partial(self._feed, bot, update)
        )
        if outcome is Outcome.BUSY:  # Telegram delivers it again later
            return web.Response(status=503, text="Busy: this update is being handled")
        return web.Response(body=self._build_response_writer(bot=bot, result=result))

    async def _feed(self, bot: Bot, update: Update) -> Any:
        async with self._slots:
            # (not feed_webhook_update: it answers after 55 s and goes on in the
            # background, and the update would count as handled before it is)
            result = await self.dispatcher.feed_update(bot, update, **self.data)
        # a handler may answer with a Bot API call in the webhook's reply
        return result if isinstance(result, TelegramMethod) else None


def listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "0.0.0.0", int(port)


class Probes:
    """Liveness, readiness and metrics endpoints."""

    def __init__(
        self,
        open_db: OpenDb,
        metrics: Metrics,
        mqtt_connected: Any,
        mqtt_reconnects: Any,
        redis: Any | None,
    ) -> None:
        self._open_db = open_db
        self._metrics = metrics
        self._mqtt_connected = mqtt_connected
        self._mqtt_reconnects = mqtt_reconnects
        self._redis = redis

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2), self._open_db() as db:
                await db.execute(text("SELECT 1"))
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
        body = await self._metrics.render(self._open_db, self._mqtt_reconnects())
        response = web.Response(body=body)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    def register(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)


async def _start_site(app: web.Application, listen: str) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    host, port = listen_address(listen)
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(
    bot: Bot,
    dispatcher: Dispatcher,
    probes: Probes,
    *,
    url: str,
    secret: str,
    listen: str,
    metrics_listen: str | None,
    stop: asyncio.Event,
    concurrency: int,
    claims: UpdateClaims,
) -> None:
    """Serve the webhook until ``stop`` is set (or SIGINT/SIGTERM); the probes and
    metrics on ``metrics_listen`` (none when it is None)."""
    app = web.Application(client_max_size=MAX_BODY)
    CheckedRequestHandler(
        dispatcher, bot, secret_token=secret, concurrency=concurrency, claims=claims
    ).register(app, path=urlsplit(url).path or "/")
    # the proxy's health check: "ok" and nothing else on the public listener
    app.router.add_get("/healthz", probes.healthz)
    setup_application(app, dispatcher, bot=bot)  # the dispatcher's start-up and shut-down
    runners = [await _start_site(app, listen)]
    log.info("webhook: listening on %s, path %s", listen, urlsplit(url).path or "/")
    try:
        if metrics_listen:
            monitoring = web.Application()
            probes.register(monitoring)
            runners.append(await _start_site(monitoring, metrics_listen))
            log.info("probes and metrics: listening on %s", metrics_listen)
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
        await stop.wait()
    finally:
        # the webhook stays set: the other instances keep serving it
        for runner in reversed(runners):
            await runner.cleanup()
