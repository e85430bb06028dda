"""The ChargeShare bot as the bench runs it: the product's App (python -m bot does
the same), plus probes that only observe. Run by bench.run as a child process:

    python -m bench.botproc CONFIG.json

CONFIG names the settings and the file the probes' samples are written to at exit.
The probes:
- handler latency: from an update's arrival in the process (its getUpdates answer
  parsed) to the first Bot API request made while handling it (the answer leaving);
- MQTT: every message the bridge's client loop hands out is counted after the
  bridge's own handler ran; Shelly NotifyStatus events carry the plug's send time
  (params.ts), which gives the lag between publish and handling; the client's
  incoming queue is sampled for the backlog;
- SQL: the statements each update makes (SQLAlchemy's cursor executions, COMMIT not
  counted, as in bench.sqlcount) and its transactions (the engine's "begin" events).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import GetUpdates

CURRENT: contextvars.ContextVar[int | None] = contextvars.ContextVar("bench_update", default=None)


def _what(update: Any) -> str:
    """A step's name for the SQL breakdown: a command, "text", "location", or a
    button's callback prefix (``bg:confirm``)."""
    query = getattr(update, "callback_query", None)
    if query is not None:
        prefix, _, rest = (query.data or "").partition(":")
        action = rest.split(":")[0]
        return prefix if action.isdigit() or not action else f"{prefix}:{action}"
    message = getattr(update, "message", None)
    if message is None:
        return "other"
    if message.location is not None:
        return "location"
    text = message.text or ""
    return text.split()[0] if text.startswith("/") else "text"


class Probe:
    def __init__(self) -> None:
        self.arrival: dict[int, float] = {}
        self.answered: set[int] = set()
        self.latency: list[tuple[float, float, str]] = []  # (arrival, ms, method)
        self.handled: list[tuple[float, float]] = []  # (arrival, done)
        self.mqtt_count = 0
        self.mqtt_lag: list[tuple[float, float]] = []  # (monotonic, ms)
        self.backlog: list[tuple[float, int, int]] = []  # (monotonic, queued, handled)
        # the trace of a start (figure 3): time.monotonic() is the same clock in every
        # process of the machine, so the bench lines these up with its own stamps
        self.presses: list[tuple[float, int, str]] = []  # (arrival, user, data)
        self.confirmations: list[tuple[float, str]] = []  # (arrival, topic): power on
        self.started: list[tuple[float, int]] = []  # ("Charging started" leaves, chat)
        self.commands: list[tuple[float, str]] = []  # (power-on published, topic)
        self.offs: list[tuple[float, str]] = []  # (power-off published, topic)
        self.replies: list[tuple[float, str]] = []  # (a plug's "off" arrives, topic)
        self.orders: list[tuple[float, int, str]] = []  # ("Order #" leaves, chat, method)
        # (arrival, statements, transactions, what the update was: see _what)
        self.sql: list[tuple[float, int, int, str]] = []
        self._sql_now: dict[int, list[int]] = {}  # update id -> [statements, transactions]

    # -- SQL --------------------------------------------------------------------------------
    def watch_sql(self) -> None:
        """Count each update's statements and transactions (every engine of the process:
        the listeners are on the Engine class; only what runs inside an update counts)."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        def counter(index: int) -> Any:
            def count(*_: Any) -> None:
                update_id = CURRENT.get()
                if update_id is not None:
                    self._sql_now.setdefault(update_id, [0, 0])[index] += 1

            return count

        event.listen(Engine, "before_cursor_execute", counter(0))
        event.listen(Engine, "begin", counter(1))

    # -- Bot API requests -------------------------------------------------------------------
    def request_middleware(self) -> BaseRequestMiddleware:
        probe = self

        class Stamp(BaseRequestMiddleware):
            async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
                if isinstance(method, GetUpdates):
                    result = await make_request(bot, method)
                    now = time.monotonic()
                    for update in result:
                        probe.arrival[update.update_id] = now
                        query = update.callback_query
                        if query is not None:
                            probe.presses.append((now, query.from_user.id, query.data or ""))
                    return result
                text = getattr(method, "text", None)
                if isinstance(text, str) and "Charging started" in text:
                    probe.started.append((time.monotonic(), int(getattr(method, "chat_id", 0))))
                if isinstance(text, str) and "Order #" in text:
                    chat = int(getattr(method, "chat_id", 0))
                    probe.orders.append((time.monotonic(), chat, type(method).__name__))
                update_id = CURRENT.get()
                if update_id is not None and update_id not in probe.answered:
                    probe.answered.add(update_id)
                    arrived = probe.arrival.get(update_id)
                    if arrived is not None:
                        now = time.monotonic()
                        probe.latency.append(
                            (arrived, (now - arrived) * 1000, type(method).__name__)
                        )
                return await make_request(bot, method)

        return Stamp()

    async def update_middleware(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
        update_id = getattr(event, "update_id", None)
        token = CURRENT.set(update_id)
        try:
            return await handler(event, data)
        finally:
            CURRENT.reset(token)
            arrived = self.arrival.pop(update_id, None) if update_id is not None else None
            sql = self._sql_now.pop(update_id, [0, 0]) if update_id is not None else [0, 0]
            if arrived is not None:
                self.handled.append((arrived, time.monotonic()))
                self.sql.append((arrived, sql[0], sql[1], _what(event)))
            self.answered.discard(update_id)  # type: ignore[arg-type]

    # -- MQTT -------------------------------------------------------------------------------
    def on_mqtt_arrival(self, msg: Any) -> None:
        """First of the client's handlers: a plug saying it is on (Tasmota's stat/…,
        Shelly's NotifyStatus with the output on), as it arrives."""
        topic, payload = msg.topic, msg.payload
        flat = payload.replace(b" ", b"")
        if (topic.startswith("stat/") and b"ON" in payload) or (
            topic.endswith("/events/rpc") and b'"output":true' in flat
        ):
            self.confirmations.append((time.monotonic(), topic))
        elif (topic.startswith("stat/") and b"OFF" in payload) or (
            topic.endswith("/events/rpc") and b'"output":false' in flat
        ):
            self.replies.append((time.monotonic(), topic))

    def on_mqtt(self, msg: Any) -> None:
        self.mqtt_count += 1
        if msg.topic.endswith("/events/rpc"):
            try:
                ts = json.loads(msg.payload)["params"]["ts"]
            except (ValueError, KeyError, TypeError):
                return
            self.mqtt_lag.append((time.monotonic(), (time.time() - float(ts)) * 1000))

    async def sample_backlog(self, client: Any) -> None:
        while True:
            inner = getattr(client, "_client", None)
            queue = getattr(inner, "_queue", None)
            queued = queue.qsize() if queue is not None else 0
            self.backlog.append((time.monotonic(), queued, self.mqtt_count))
            await asyncio.sleep(0.25)

    def watch_publishes(self) -> None:
        """Stamp each power-on command as the bridge hands it to the MQTT library
        (wrapping aiomqtt's public ``Client.publish`` in this process only)."""
        import aiomqtt

        probe, publish = self, aiomqtt.Client.publish

        async def stamped(client: Any, topic: str, payload: Any = None, *a: Any, **kw: Any) -> Any:
            raw = payload.encode() if isinstance(payload, str) else (payload or b"")
            if (topic.endswith("/POWER") and raw.upper() == b"ON") or (
                topic.endswith("/rpc") and b'"on": true' in raw
            ):
                probe.commands.append((time.monotonic(), topic))
            elif (topic.endswith("/POWER") and raw.upper() == b"OFF") or (
                topic.endswith("/rpc") and b'"on": false' in raw
            ):
                probe.offs.append((time.monotonic(), topic))
            return await publish(client, topic, payload, *a, **kw)

        aiomqtt.Client.publish = stamped  # type: ignore[method-assign]

    def dump(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "handled": self.handled,
            "mqtt_lag": self.mqtt_lag,
            "backlog": self.backlog,
            "presses": self.presses,
            "confirmations": self.confirmations,
            "started": self.started,
            "commands": self.commands,
            "offs": self.offs,
            "replies": self.replies,
            "orders": self.orders,
            "sql": self.sql,
        }


async def main(config: dict[str, Any]) -> None:
    from bot.app import App
    from bot.settings import load_settings

    settings = load_settings(_env_file=None, **config["settings"])
    app = App(settings)
    probe = Probe()
    probe.watch_publishes()
    probe.watch_sql()
    app.bot.session.middleware(probe.request_middleware())
    app.outbox_bot.session.middleware(probe.request_middleware())  # the orders go there
    # first of the outer middlewares, so the handled time covers all of them
    app.dispatcher.update.outer_middleware._middlewares.insert(0, probe.update_middleware)
    app.bridge.client.add_handler(probe.on_mqtt)  # after the bridge's own handler
    app.bridge.client._handlers.insert(0, probe.on_mqtt_arrival)  # before it
    sampler = asyncio.create_task(probe.sample_backlog(app.bridge.client))
    try:
        await app.run_polling(handle_signals=True)
    finally:
        sampler.cancel()
        Path(config["out"]).write_text(json.dumps(probe.dump()))  # noqa: ASYNC240 - at exit


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="bot: %(levelname)s %(name)s: %(message)s")
    with open(sys.argv[1]) as f:
        config = json.load(f)
    profile = os.environ.get("BENCH_PROFILE")  # a file: pyinstrument's report of the bot
    if profile:
        from pyinstrument import Profiler

        mode = os.environ.get("BENCH_PROFILE_ASYNC", "disabled")  # "enabled": await time too
        with Profiler(interval=0.001, async_mode=mode) as profiler:
            asyncio.run(main(config))
        Path(profile).write_text(
            profiler.output_text(unicode=False, show_all=False)
            + "\n\n"
            + profiler.output_text(unicode=False, flat=True)
        )
    else:
        asyncio.run(main(config))
