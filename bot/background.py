"""A background loop that stops between iterations, never in the middle of one.

Cancelling a task while it is inside a database transaction can leave the
connection checked out (and, on SQLite, the write lock held); so stopping sets
a flag, wakes the loop and waits for its current iteration to finish.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Loop:
    def __init__(self, name: str, step: Callable[[], Awaitable[bool]], idle: float) -> None:
        """``step`` returns True when it did something (then it runs again at once)."""
        self._name = name
        self._step = step
        self._idle = idle
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log.warning("%s did not stop in %ss; cancelling it", self._name, timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            # cleared before the step, not after: a wake() while the step runs (a commit
            # its query came too early to see) must run it again at once, not be lost
            # until the idle poll
            self._wake.clear()
            try:
                busy = await self._step()
            except Exception:  # the loop must outlive a database or network hiccup
                log.exception("%s: step failed", self._name)
                busy = False
            if busy or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle)
