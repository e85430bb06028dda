"""Timed work: every few seconds, carry out what is due (booking expiry, and the
charging jobs: 5-minute warnings, window-end stops, no-shows, stale starts).

Due times live in the database, so work that fell due while the bot was down is
done at the next start; each change is a conditional UPDATE, so it happens once.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.background import Loop
from services import bookings
from services.tx import OpenDb

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        open_db: OpenDb,
        *,
        interval: float = 5.0,
        on_change: Callable[[], None] | None = None,
        jobs: Sequence[Callable[[], Awaitable[int]]] = (),
    ) -> None:
        self._open_db = open_db
        self._on_change = on_change
        self._jobs = list(jobs)
        self._loop = Loop("scheduler", self._step, interval)
        self.start, self.stop = self._loop.start, self._loop.stop

    async def tick(self) -> int:
        async with self._open_db() as db:
            done = await bookings.expire_due(db)
            done += await bookings.remind_due(db)
        for job in self._jobs:
            try:
                done += await job()
            except Exception:  # one failing job must not starve the others
                log.exception("scheduled job %s failed", getattr(job, "__qualname__", job))
        if done and self._on_change:
            self._on_change()
        return done

    async def _step(self) -> bool:
        await self.tick()
        return False
