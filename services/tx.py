"""Units of work over the database, and the names its sessions go by.

A database session is ``db`` everywhere (a handler's parameter included, through
the ``Db`` alias, so handlers need no SQLAlchemy import); the factory that opens
them is ``open_db``. ("session" alone means a charging session.)
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.db import write_gate

Db: TypeAlias = AsyncSession
OpenDb: TypeAlias = async_sessionmaker[AsyncSession]

# read by models.db: on SQLite this transaction takes the write lock at BEGIN
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}
# in Session.info while a unit of work, or an outermost read, runs
_IN_UNIT = "chargeshare.unit_of_work"
_IN_READ = "chargeshare.read"


@asynccontextmanager
async def transaction(db: AsyncSession) -> AsyncIterator[AsyncSession]:
    """One unit of work that writes: commit on success, roll back on any error.

    Reads the same update made earlier (to show something) end first: their
    snapshot is not this unit's. Objects that a decision depends on must be
    re-read inside (``populate_existing``). On SQLite the unit starts with
    ``BEGIN IMMEDIATE``, so two check-then-write units wait for each other
    instead of failing, as row locks make them on PostgreSQL; within a process
    they queue on the engine's write gate first (models.db.write_gate).
    """
    if db.in_transaction():
        await db.commit()
    async with write_gate(db) or nullcontext(), _unit(db):
        yield db


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
