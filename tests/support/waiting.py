"""Waiting on a condition instead of sleeping a fixed time: as fast as the condition
allows, and as patient as the timeout."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Predicate = Callable[[], bool | Awaitable[bool]]


async def wait_until(
    predicate: Predicate,
    timeout: float = 5.0,  # noqa: ASYNC109 - a plain number reads best in tests
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Return as soon as ``predicate()`` (plain or async) is true; raise AssertionError
    naming ``what`` if it is still false after ``timeout`` seconds. It is checked at
    once, then every ``interval`` seconds (polling, for conditions with no event)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)
