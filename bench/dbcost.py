"""What one database step costs through the product's own engine, beside the same
SQL on the raw driver (docs/benchmarks.md, figure 1):

    .venv/bin/python -m bench.dbcost [DATABASE_URL]

Without a URL it uses a throwaway SQLite file. Prints microseconds per step.
"""

import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from models import Base, FsmRecord, User
from models.db import create_engine, create_session_factory
from services import bookings
from services.tx import read, transaction

ROUNDS = 2000


async def main(url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="chargeshare-dbcost-"))
    url = url or f"sqlite+aiosqlite:///{folder / 'cost.db'}"
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    open_db = create_session_factory(engine)
    async with open_db() as db, transaction(db):
        db.add(User(id=1, first_name="a"))
        db.add(FsmRecord(key="k", state="x", data={"a": 1}))

    async def timed(what: str, step: Callable[[], Awaitable[None]]) -> None:
        for _ in range(50):
            await step()
        started = time.perf_counter()
        for _ in range(ROUNDS):
            await step()
        print(f"{what:58s} {(time.perf_counter() - started) / ROUNDS * 1e6:8.1f} us")

    async def get_user() -> None:
        async with open_db() as db:
            await db.get(User, 1)

    async def empty_unit() -> None:
        async with open_db() as db, transaction(db):
            pass

    async def fsm_step() -> None:
        async with open_db() as db, transaction(db):
            await db.execute(
                update(FsmRecord).where(FsmRecord.key == "k").values(state="y", data={"a": 2})
            )

    async def core_select() -> None:
        async with engine.connect() as conn:
            (await conn.execute(select(User).where(User.id == 1))).first()

    # a booking step's read of its charger (no such charger: the cost is the
    # statement's, not the row's), its statement built at each call or once
    # (the product's own statement: ``__wrapped__`` builds it afresh, past its cache)
    async def charger_built_each_time() -> None:
        async with open_db() as db:
            statement = bookings._bookable_statement.__wrapped__(False, False)
            (await db.execute(statement, {"charger_id": 1, "user_id": None})).one_or_none()

    async def charger_built_once() -> None:
        async with open_db() as db:
            statement = bookings._bookable_statement(False, False)
            (await db.execute(statement, {"charger_id": 1, "user_id": None})).one_or_none()

    span = {"charger_id": 1, "start": datetime.now(UTC), "end": datetime.now(UTC)}

    # a conversation step: a read, then the new state in a unit of its own (before),
    # or both in one transaction (services.tx.step)
    async def read_then_fsm_unit() -> None:
        async with open_db() as db:
            async with read(db):
                await db.execute(bookings._BUSY, span)
            async with transaction(db):
                await db.execute(
                    update(FsmRecord).where(FsmRecord.key == "k").values(state="y", data={"a": 2})
                )

    async def read_and_fsm_in_one() -> None:
        async with open_db() as db, transaction(db):
            await db.execute(bookings._BUSY, span)
            await db.execute(
                update(FsmRecord).where(FsmRecord.key == "k").values(state="y", data={"a": 2})
            )

    print(f"database: {engine.url.render_as_string(hide_password=True)}")
    await timed("session.get(User) in a new session", get_user)
    await timed("empty write unit (services.tx.transaction)", empty_unit)
    await timed("write unit with one UPDATE (an FSM step)", fsm_step)
    await timed("Core SELECT on a pooled connection", core_select)
    await timed("a charger's read, statement built at each call", charger_built_each_time)
    await timed("the same read, statement built once", charger_built_once)
    await timed("a read, then the FSM's UPDATE in a second transaction", read_then_fsm_unit)
    await timed("the read and the FSM's UPDATE in one transaction", read_and_fsm_in_one)
    await engine.dispose()
    if engine.url.get_backend_name() == "sqlite":
        raw = sqlite3.connect(engine.url.database or ":memory:", isolation_level=None)
        started = time.perf_counter()
        for _ in range(ROUNDS):
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("UPDATE fsm_states SET state=?, data=? WHERE key=?", ("y", "{}", "k"))
            raw.execute("COMMIT")
        per = (time.perf_counter() - started) / ROUNDS * 1e6
        print(f"{'the same UPDATE unit on the raw sqlite3 driver':58s} {per:8.1f} us")
        raw.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
