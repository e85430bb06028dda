"""Magic filters (``F.text == ...``) and FSM states used as filters, checked on
the event loop, not in a thread.

aiogram runs every filter that is not a coroutine function through
``asyncio.to_thread``, these included, although checking one is a few attribute
reads or a string comparison. The bench's updates checked 9 of them each on their
way through the routers, each a hand-off to a worker thread and back (a future, a
wake-up of the loop, a switch of the GIL): far more than the check itself
(docs/benchmarks.md). Wrapped in a coroutine function, the same callable runs in
place with the same arguments and gives the same result.
"""

from collections.abc import Iterator
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.fsm.state import State


def inline_sync_filters(root: Router) -> int:
    """Make every magic or state filter under ``root`` run inline; returns how many."""
    changed = 0
    for router in _routers(root):
        for observer in router.observers.values():
            if not isinstance(observer, TelegramEventObserver):
                continue
            # router-level filters (observer.filter(...)) live on its own handler
            groups = [observer._handler.filters, *(h.filters for h in observer.handlers)]
            for filters in groups:
                for filter_ in filters or ():
                    changed += _inline(filter_)
    return changed


def _routers(router: Router) -> Iterator[Router]:
    yield router
    for sub in router.sub_routers:
        yield from _routers(sub)


def _inline(filter_: FilterObject) -> int:
    pure = filter_.magic is not None or isinstance(filter_.callback, State)
    if not pure or filter_.awaitable:
        return 0
    sync = filter_.callback  # a magic filter's resolve(value), or State.__call__

    async def check(*args: Any, **kwargs: Any) -> Any:
        return sync(*args, **kwargs)

    filter_.callback, filter_.awaitable = check, True
    return 1
