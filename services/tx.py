"""Units of work over the database, and the names its sessions go by.

A database session is ``db`` everywhere (a handler's parameter included, through
the ``Db`` alias, so handlers need no SQLAlchemy import); the factory that opens
them is ``open_db``. ("session" alone means a charging session.)
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.db import write_gate

Db: TypeAlias = AsyncSession
OpenDb: TypeAlias = async_sessionmaker[AsyncSession]

# read by models.db: on SQLite this transaction takes the write lock at BEGIN
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}
# in Session.info while a unit of work, or an outermost read, runs
_IN_UNIT = "chargeshare.unit_of_work"
_IN_READ = "chargeshare.read"


class OwedWrites(Protocol):
    """Writes an update owes that may ride along with its step's unit of work (the
    conversation's state: bot/fsm_storage.py)."""

    async def write_into(self, db: AsyncSession) -> Callable[[], None] | None:
        """Writes what is owed in ``db``'s transaction, before it commits; returns
        what to call once it has committed (None: nothing was owed). Should the
        unit roll back, the writes stay owed."""
        ...

    def savepoint(self) -> Callable[[], None]:
        """What undoes the writes owed from now on (a step that rolled back)."""
        ...


_OWED: ContextVar[OwedWrites | None] = ContextVar("owed_writes", default=None)
# the task holding the write gate (SQLite): a second unit it opened on another
# session would wait for itself
_GATE_HOLDER: ContextVar[asyncio.Task[Any] | None] = ContextVar("gate_holder", default=None)


@contextmanager
def owing(writes: OwedWrites) -> Iterator[None]:
    """While an update is handled: ``step`` units write what it owes."""
    token = _OWED.set(writes)
    try:
        yield
    finally:
        _OWED.reset(token)


@asynccontextmanager
async def transaction(db: AsyncSession) -> AsyncIterator[AsyncSession]:
    """One unit of work that writes: commit on success, roll back on any error.

    Reads the same update made earlier (to show something) end first: their
    snapshot is not this unit's. Objects that a decision depends on must be
    re-read inside (``populate_existing``). On SQLite the unit starts with
    ``BEGIN IMMEDIATE``, so two check-then-write units wait for each other
    instead of failing, as row locks make them on PostgreSQL; within a process
    they queue on the engine's write gate first (models.db.write_gate).

    A unit inside a unit (a service called within a handler's ``step``) is part
    of the outer one and ends with it.
    """
    if db.info.get(_IN_UNIT):
        yield db
        return
    if db.in_transaction():
        await db.commit()
    gate = write_gate(db)
    if gate is None:
        async with _unit(db):
            yield db
        return
    me = asyncio.current_task()
    if _GATE_HOLDER.get() is me:
        raise RuntimeError("a unit of work inside another one's, on a second session")
    async with gate:
        holder = _GATE_HOLDER.set(me)
        try:
            async with _unit(db):
                yield db
        finally:
            _GATE_HOLDER.reset(holder)


async def lock_rows(db: AsyncSession, statement: Any, params: dict[str, Any] | None = None) -> None:
    """Take the row locks of ``statement`` (a ``SELECT … FOR UPDATE`` whose rows are not
    needed), where the database has row locks. SQLite has none (SQLAlchemy leaves FOR
    UPDATE out there): a unit of work on it holds the database's write lock from its
    BEGIN IMMEDIATE, so the statement would be a read for nothing."""
    if db.get_bind().dialect.name != "sqlite":
        await db.execute(statement, params)


@asynccontextmanager
async def step(db: AsyncSession) -> AsyncIterator[AsyncSession]:
    """A conversation step in one transaction: its reads, its domain writes, and
    the state the conversation moves to (what the update owes, ``owing``), written
    just before the commit. Nothing inside may wait on Telegram: on SQLite the
    unit holds the write lock.

    On an error all of it rolls back, the state set inside the step included (the
    conversation stays where it was); a state the update set before the step is
    written at the update's end, as without a step."""
    if db.info.get(_IN_UNIT):  # part of an outer unit: what is owed waits for the update's end
        yield db
        return
    owed = _OWED.get()
    undo = owed.savepoint() if owed is not None else None
    try:
        async with transaction(db):
            yield db
            done = await owed.write_into(db) if owed is not None else None
    except BaseException:
        if undo is not None:
            undo()
        raise
    if done is not None:
        done()


@asynccontextmanager
async def _unit(db: AsyncSession) -> AsyncIterator[None]:
    await db.connection(execution_options=WRITE_OPTIONS)
    db.info[_IN_UNIT] = True
    try:
        yield
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    finally:
        db.info.pop(_IN_UNIT, None)


@asynccontextmanager
async def read(db: Db) -> AsyncIterator[Db]:
    """A read for a person's answer: it ends when done, so the connection goes back
    to the pool before the caller talks to Telegram. Inside a unit of work
    (``transaction``), or inside another read (a notification rendered from several),
    it is part of that one and ends with it."""
    if db.info.get(_IN_UNIT) or db.info.get(_IN_READ):
        yield db
        return
    db.info[_IN_READ] = True
    try:
        yield db
    except BaseException:
        await db.rollback()
        raise
    finally:
        db.info.pop(_IN_READ, None)
    await db.commit()
