from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

# read by models.db: on SQLite this transaction takes the write lock at BEGIN
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """One unit of work that writes: commit on success, roll back on any error.

    Reads the same update made earlier (to show something) end first: their
    snapshot is not this unit's. Objects that a decision depends on must be
    re-read inside (``populate_existing``). On SQLite the unit starts with
    ``BEGIN IMMEDIATE``, so two check-then-write units wait for each other
    instead of failing, as row locks make them on PostgreSQL.
    """
    if session.in_transaction():
        await session.commit()
    await session.connection(execution_options=WRITE_OPTIONS)
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
