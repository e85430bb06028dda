"""Keep a lease alive while work runs: renew it every so often, stop cleanly after.

The renewer is asked to stop, never cancelled: a cancel that lands inside a Redis or
database command can be turned into a timeout by the client (and so be swallowed,
leaving whoever waits for the renewer hanging) or leave the connection mid-reply.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


@asynccontextmanager
async def renewing(every: float, renew: Callable[[], Awaitable[bool]]) -> AsyncIterator[None]:
    """Call ``renew`` every ``every`` seconds until the block ends (or it returns False)."""
    stop = asyncio.Event()

    async def loop() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
                return
            if not await renew():
                return

    renewer = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        # an in-flight renewal finishes; one stuck on a dead connection is let go
        done, _ = await asyncio.wait({renewer}, timeout=max(every * 3, 1.0))
        if not done:
            renewer.cancel()
            log.warning("lease renewer did not stop in time; cancelled")
