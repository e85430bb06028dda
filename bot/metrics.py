"""Prometheus metrics: updates by type, handler latency, errors, and gauges read
at scrape time (running sessions, pending notifications, MQTT reconnections).

One registry per App, so several bots in one process (tests) do not collide.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from models import ChargingSession, OutboxMessage, SessionStatus
from services.errors import DomainError
from services.tx import OpenDb

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "chargeshare_updates", "Updates handled, by type", ["type"], registry=self.registry
        )
        self.latency = Histogram(
            "chargeshare_handler_seconds",
            "Time from an update's arrival in the process to the end of its handling",
            ["type"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.errors = Counter(
            "chargeshare_handler_errors", "Updates whose handler raised", registry=self.registry
        )
        self.sessions = Gauge(
            "chargeshare_active_sessions", "Charging sessions running now", registry=self.registry
        )
        self.pending = Gauge(
            "chargeshare_pending_notifications",
            "Messages owed to people and not yet sent",
            registry=self.registry,
        )
        self.mqtt_reconnects = Gauge(
            "chargeshare_mqtt_reconnections",
            "Reconnections to the MQTT broker since start",
            registry=self.registry,
        )

    async def render(self, open_db: OpenDb, mqtt_reconnects: int) -> bytes:
        async with open_db() as db:
            running = await db.scalar(
                select(func.count())
                .select_from(ChargingSession)
                .where(ChargingSession.status == SessionStatus.CHARGING)
            )
            pending = await db.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
            )
        self.sessions.set(running or 0)
        self.pending.set(pending or 0)
        self.mqtt_reconnects.set(mqtt_reconnects)
        return generate_latest(self.registry)


class MetricsMiddleware(BaseMiddleware):
    """Counts every update, times its handling (from the first outer middleware on)
    and counts the updates whose handling raised (aiogram's error handlers, in
    handlers/errors.py, see the error after this middleware let it through)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = event.event_type if isinstance(event, Update) else type(event).__name__
        started = time.perf_counter()
        try:
            return await handler(event, data)
        except DomainError:
            raise  # a refusal said to the person (handlers/errors.py), not an error
        except Exception:
            self.metrics.errors.inc()
            raise
        finally:
            self.metrics.updates.labels(kind).inc()
            self.metrics.latency.labels(kind).observe(time.perf_counter() - started)
