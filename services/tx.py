from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from sqlalchemy.ext.asyncio import AsyncSession

from models.db import write_gate

# read by models.db: on SQLite this transaction takes the write lock at BEGIN
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """One unit of work that writes: commit on success, roll back on any error.

    Reads the same update made earlier (to show something) end first: their
    snapshot is not this unit's. Objects that a decision depends on must be
    re-read inside (``populate_existing``). On SQLite the unit starts with
    ``BEGIN IMMEDIATE``, so two check-then-write units wait for each other
    instead of failing, as row locks make them on PostgreSQL; within a process
    they queue on the engine's write gate first (models.db.write_gate).
    """
    if session.in_transaction():
        await session.commit()
    async with write_gate(session) or nullcontext(), _unit(session):
        yield session


@asynccontextmanager
async def _unit(session: AsyncSession) -> AsyncIterator[None]:
    await session.connection(execution_options=WRITE_OPTIONS)
    try:
        yield
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
