"""Each webhook update acts once, also when Telegram delivers it again.

Telegram delivers an update again when its answer did not arrive in time (a slow
handler, a lost connection, an instance that died), possibly to another instance.
Before handling, an instance claims the update id: atomically (Redis ``SET NX``,
or an ``INSERT`` into ``handled_updates`` that a unique key lets only one make),
with a short lease that it renews while it works. Once handling finished the claim
becomes "handled" and a repeat is answered 200 and skipped. A repeat that finds
the claim still in progress waits a little: the taker may finish, or, if it died,
its lease runs out within seconds and the repeat is handled here. Failing that it
gets a 503, and Telegram delivers it once more later.

Long polling needs none of this (getUpdates' offset hands each update out once).
"""

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from redis.asyncio import Redis
from sqlalchemy import delete, select, update

from bot.renewal import renewing
from models import HandledUpdate
from models.base import utcnow
from models.db import upsert_insert
from services.tx import Db, OpenDb, transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

CLAIM_SECONDS = 5.0  # a dead taker's claim runs out this soon; a live one renews it
WAIT_BUSY_SECONDS = 8.0  # a repeat waits this long for the taker (> CLAIM_SECONDS)
KEEP_SECONDS = 24 * 3600  # Telegram keeps an undelivered update no longer than a day
PRUNE_EVERY_SECONDS = 600


class Claim(enum.Enum):
    TAKEN = "taken"  # ours to handle
    HANDLED = "handled"  # done before: skip
    BUSY = "busy"  # another instance is handling it right now


class Outcome(enum.Enum):
    HANDLED = "handled"
    REPEAT = "repeat"  # handled before; skipped
    BUSY = "busy"  # still being handled elsewhere; answer so Telegram tries again


class UpdateClaims:
    """The protocol; ``once`` runs a handler for an update id at most once."""

    def __init__(
        self,
        *,
        claim_seconds: float = CLAIM_SECONDS,
        wait_busy: float = WAIT_BUSY_SECONDS,
        keep_seconds: float = KEEP_SECONDS,
        poll: float = 0.1,
    ) -> None:
        self.claim_seconds = claim_seconds
        self.wait_busy = wait_busy
        self.keep_seconds = keep_seconds
        self.poll = poll

    async def claim(self, update_id: int, owner: str) -> Claim:
        raise NotImplementedError

    async def renew(self, update_id: int, owner: str) -> None:
        raise NotImplementedError

    async def finish(self, update_id: int, owner: str) -> None:
        raise NotImplementedError

    async def release(self, update_id: int, owner: str) -> None:
        """Give an unfinished claim up (handling failed): a repeat is handled."""
        raise NotImplementedError

    async def once(
        self, update_id: int, handle: Callable[[], Awaitable[T]]
    ) -> tuple[Outcome, T | None]:
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_busy
        while (claim := await self.claim(update_id, owner)) is Claim.BUSY:
            if time.monotonic() >= deadline:
                log.warning("update %s: still being handled elsewhere", update_id)
                return Outcome.BUSY, None
            await asyncio.sleep(self.poll)
        if claim is Claim.HANDLED:
            log.info("update %s delivered again: handled before, skipped", update_id)
            return Outcome.REPEAT, None
        try:
            async with renewing(self.claim_seconds / 3, lambda: self._renew(update_id, owner)):
                result = await handle()
        except BaseException:
            with contextlib.suppress(Exception):  # it runs out by itself otherwise
                await asyncio.shield(self.release(update_id, owner))
            raise
        try:
            await self.finish(update_id, owner)
        except Exception:  # handled all the same: Telegram gets its answer, no repeat
            log.warning("update %s: not marked handled", update_id, exc_info=True)
        return Outcome.HANDLED, result

    async def _renew(self, update_id: int, owner: str) -> bool:
        try:
            await self.renew(update_id, owner)
        except Exception:  # a blip: the next renewal may make it
            log.warning("update %s: claim not renewed", update_id, exc_info=True)
        return True


class RedisUpdateClaims(UpdateClaims):
    """Claims in Redis (several instances): ``SET NX PX``, then "handled" for a day."""

    _IF_OURS_EXPIRE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"  # noqa: E501
    _IF_OURS_DELETE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"  # noqa: E501
    _HANDLED = b"handled"

    def __init__(self, redis: Redis, namespace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redis = redis
        self.prefix = f"chargeshare:{namespace}:update:"
        self._expire_if_ours = redis.register_script(self._IF_OURS_EXPIRE)
        self._delete_if_ours = redis.register_script(self._IF_OURS_DELETE)

    def _ttl_ms(self) -> int:
        return int(self.claim_seconds * 1000)

    async def claim(self, update_id: int, owner: str) -> Claim:
        key = self.prefix + str(update_id)
        if await self.redis.set(key, owner, nx=True, px=self._ttl_ms()):
            return Claim.TAKEN
        value = await self.redis.get(key)
        # (None: the claim ran out just now; the next try may take it)
        return Claim.HANDLED if value in (self._HANDLED, self._HANDLED.decode()) else Claim.BUSY

    async def renew(self, update_id: int, owner: str) -> None:
        await self._expire_if_ours(
            keys=[self.prefix + str(update_id)], args=[owner, self._ttl_ms()]
        )

    async def finish(self, update_id: int, owner: str) -> None:
        await self.redis.set(self.prefix + str(update_id), self._HANDLED, ex=int(self.keep_seconds))

    async def release(self, update_id: int, owner: str) -> None:
        await self._delete_if_ours(keys=[self.prefix + str(update_id)], args=[owner])


class SqlUpdateClaims(UpdateClaims):
    """Claims in the database (``handled_updates``), when there is no Redis."""

    def __init__(self, open_db: OpenDb, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.open_db = open_db
        self._pruned = 0.0

    async def claim(self, update_id: int, owner: str) -> Claim:
        now = utcnow()
        until = now + timedelta(seconds=self.claim_seconds)
        async with self.open_db() as db, transaction(db):
            await self._prune(db)
            inserted = await db.scalar(
                upsert_insert(db.get_bind().dialect.name, HandledUpdate)
                .values(update_id=update_id, received_at=now, owner=owner, claimed_until=until)
                .on_conflict_do_nothing(index_elements=["update_id"])
                .returning(HandledUpdate.update_id)
            )
            if inserted is not None:
                return Claim.TAKEN
            # a claim whose taker died (its lease ran out before it finished)
            taken_over = await db.scalar(
                update(HandledUpdate)
                .where(
                    HandledUpdate.update_id == update_id,
                    HandledUpdate.handled_at.is_(None),
                    HandledUpdate.claimed_until < now,
                )
                .values(owner=owner, claimed_until=until)
                .returning(HandledUpdate.update_id)
            )
            if taken_over is not None:
                return Claim.TAKEN
            handled_at = await db.scalar(
                select(HandledUpdate.handled_at).where(HandledUpdate.update_id == update_id)
            )
        return Claim.HANDLED if handled_at is not None else Claim.BUSY

    async def renew(self, update_id: int, owner: str) -> None:
        async with self.open_db() as db, transaction(db):
            await db.execute(
                update(HandledUpdate)
                .where(
                    HandledUpdate.update_id == update_id,
                    HandledUpdate.owner == owner,
                    HandledUpdate.handled_at.is_(None),
                )
                .values(claimed_until=utcnow() + timedelta(seconds=self.claim_seconds))
            )

    async def finish(self, update_id: int, owner: str) -> None:
        async with self.open_db() as db, transaction(db):
            await db.execute(
                update(HandledUpdate)
                .where(HandledUpdate.update_id == update_id)
                .values(handled_at=utcnow())
            )

    async def release(self, update_id: int, owner: str) -> None:
        async with self.open_db() as db, transaction(db):
            await db.execute(
                delete(HandledUpdate).where(
                    HandledUpdate.update_id == update_id,
                    HandledUpdate.owner == owner,
                    HandledUpdate.handled_at.is_(None),
                )
            )

    async def _prune(self, db: Db) -> None:
        """Forget updates older than a day, now and then (in the claim's transaction)."""
        if time.monotonic() - self._pruned < PRUNE_EVERY_SECONDS:
            return
        self._pruned = time.monotonic()
        cutoff = utcnow() - timedelta(seconds=self.keep_seconds)
        await db.execute(delete(HandledUpdate).where(HandledUpdate.received_at < cutoff))
