"""Claims on webhook update ids (issue #12): an update delivered again acts once, in
the database (SQLite and PostgreSQL) and in Redis; a taker that dies before it
finished leaves a claim that runs out within seconds, so the repeat is handled."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.update_claims import (
    Claim,
    Outcome,
    RedisUpdateClaims,
    SqlUpdateClaims,
    UpdateClaims,
)
from models import HandledUpdate
from models.base import utcnow
from services.tx import transaction
from tests.support.services import start_redis
from tests.support.waiting import wait_until

Make = Callable[..., UpdateClaims]
TTL = 0.6  # a short claim, so a dead taker's runs out quickly in the tests
LONG = 60.0  # a claim that cannot run out during a test, however loaded the machine


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
async def redis(redis_server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server)
    await client.flushdb()
    yield client
    await client.aclose()


def sql(open_db: async_sessionmaker[AsyncSession]) -> Make:
    return lambda **kwargs: SqlUpdateClaims(open_db, **kwargs)


def in_redis(redis: Redis) -> Make:
    return lambda **kwargs: RedisUpdateClaims(redis, "42", **kwargs)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    await wait_until(check, timeout)


async def claims_act_once(make: Make) -> None:
    first, second = make(claim_seconds=LONG), make(claim_seconds=LONG)
    assert await first.claim(1, "a") is Claim.TAKEN
    assert await second.claim(1, "b") is Claim.BUSY  # being handled by the first
    await first.finish(1, "a")
    assert await second.claim(1, "b") is Claim.HANDLED  # a repeat: skipped

    # a taker dies while handling update 2: its claim runs out, the repeat is taken
    dying = make(claim_seconds=TTL)
    assert await dying.claim(2, "a") is Claim.TAKEN

    async def taken() -> bool:
        return await second.claim(2, "b") is Claim.TAKEN

    await eventually(taken)
    # the dead taker's leftovers do not disturb the new one's claim
    await dying.renew(2, "a")
    await dying.release(2, "a")
    assert await make(claim_seconds=TTL).claim(2, "c") is Claim.BUSY
    await second.finish(2, "b")
    assert await first.claim(2, "a") is Claim.HANDLED

    # handling failed: the claim is given up, and a repeat is handled
    assert await first.claim(3, "a") is Claim.TAKEN
    await first.release(3, "a")
    assert await second.claim(3, "b") is Claim.TAKEN


async def once_runs_each_update_once(make: Make) -> None:
    claims = make(claim_seconds=TTL, poll=0.01)
    calls: list[int] = []
    gate = asyncio.Event()

    async def handle() -> str:
        calls.append(1)
        await gate.wait()
        return "done"

    # the same update twice at once: the second waits for the first, then skips
    both = asyncio.gather(claims.once(5, handle), claims.once(5, handle))

    async def running() -> bool:
        return bool(calls)

    await eventually(running)
    # ... also while handling outlasts the claim's first lease (it is renewed)
    started = time.monotonic()
    other = make(claim_seconds=TTL)
    while time.monotonic() - started < 3 * TTL:
        assert await other.claim(5, "x") is Claim.BUSY
        await asyncio.sleep(TTL / 5)
    gate.set()
    assert sorted(await both, key=lambda r: r[0].value) == [
        (Outcome.HANDLED, "done"),
        (Outcome.REPEAT, None),
    ]
    assert calls == [1]

    # a handler that raises gives its claim up: the repeat is handled
    async def broken() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await claims.once(6, broken)
    assert await claims.once(6, handle) == (Outcome.HANDLED, "done")

    # a repeat that finds the update still in progress past its patience: BUSY (503)
    assert await other.claim(7, "x") is Claim.TAKEN
    patient = make(claim_seconds=60, wait_busy=0.1, poll=0.01)
    assert await patient.once(7, handle) == (Outcome.BUSY, None)


async def test_database_claims_act_once(open_db: async_sessionmaker[AsyncSession]) -> None:
    await claims_act_once(sql(open_db))


async def test_redis_claims_act_once(redis: Redis) -> None:
    await claims_act_once(in_redis(redis))


async def test_database_once(open_db: async_sessionmaker[AsyncSession]) -> None:
    await once_runs_each_update_once(sql(open_db))


async def test_redis_once(redis: Redis) -> None:
    await once_runs_each_update_once(in_redis(redis))
    assert await redis.ttl("chargeshare:42:update:5") > 3600  # remembered for a while


async def test_old_update_ids_are_pruned(open_db: async_sessionmaker[AsyncSession]) -> None:
    old = utcnow() - timedelta(days=2)
    async with open_db() as db, transaction(db):
        db.add(HandledUpdate(update_id=1, received_at=old, owner="a", claimed_until=old))
    await SqlUpdateClaims(open_db).claim(2, "b")
    async with open_db() as db:
        left = (await db.scalars(select(HandledUpdate.update_id))).all()
    assert left == [2]
