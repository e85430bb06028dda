"""One update at a time per user across instances, without a dead instance
blocking that user for long.

aiogram's RedisEventIsolation holds a Redis lock for 60 s: an instance killed
while handling someone's update would make their next updates wait that long
(and, as Telegram delivers a bot's updates in order, others' behind them). Here
the lock lives a few seconds and the instance holding it extends it while the
handler runs, so a dead holder's lock runs out in seconds.
"""

import contextlib
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    DefaultKeyBuilder,
    KeyBuilder,
    StorageKey,
)
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from bot.renewal import renewing

log = logging.getLogger(__name__)


class RenewedRedisEventIsolation(BaseEventIsolation):
    def __init__(
        self, redis: Redis, *, ttl: float = 5.0, key_builder: KeyBuilder | None = None
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.key_builder = key_builder or DefaultKeyBuilder()

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        name = self.key_builder.build(key, "lock")
        lock = Lock(self.redis, name, timeout=self.ttl, sleep=0.02)
        await lock.acquire()
        try:
            async with renewing(self.ttl / 3, lambda: self._renew(lock)):
                yield None
        finally:
            with contextlib.suppress(LockError):  # ran out meanwhile (a long stall)
                await lock.release()

    @staticmethod
    async def _renew(lock: Lock) -> bool:
        try:
            await lock.reacquire()
        except LockError:
            log.warning("per-user lock %s lost while handling an update", lock.name)
            return False
        return True

    async def close(self) -> None:
        pass
