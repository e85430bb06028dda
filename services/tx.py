from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error.

    Unlike ``session.begin()`` it also works when earlier reads of the same
    update already began a transaction (they then belong to this one).
    """
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
