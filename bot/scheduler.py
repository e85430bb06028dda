"""Timed work: every few seconds, carry out what is due (booking expiry).

Due times live in the database, so work that fell due while the bot was down is
done at the next start; each change is a conditional UPDATE, so it happens once.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import bookings

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        interval: float = 5.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def tick(self) -> int:
        async with self._sessions() as session:
            done = await bookings.expire_due(session)
        if done and self._on_change:
            self._on_change()
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler: tick failed")
            await asyncio.sleep(self._interval)
