"""Filters shared by the routers.

Every filter here is an ``aiogram.filters.Filter`` (an async ``__call__``), which
aiogram awaits in place. A plain callable, a magic filter (``F.text == ...``) or a
bare ``State`` given as a filter is run through ``asyncio.to_thread`` instead: a
hand-off to a worker thread and back for a check of a few attribute reads
(docs/benchmarks.md). So routers wrap magic filters in ``Magic(...)`` and states in
``StateFilter(...)``; tests/test_dependency_assumptions.py fails on one left bare.
"""

from typing import Any

from aiogram.filters import BaseFilter, Filter
from aiogram.types import TelegramObject
from aiogram.utils.magic_filter import MagicFilter

from ui.config import Config


class Magic(Filter):
    """A magic filter on the event (``Magic(F.chat.type == "private")``), awaited in
    place. Its result is the magic filter's own, so ``.as_("name")`` still hands the
    handler a ``name`` argument (aiogram merges a filter's dict into the handler's
    data)."""

    __slots__ = ("magic",)

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)

    def __str__(self) -> str:
        return self._signature_to_string(magic=self.magic)


class IsAdmin(BaseFilter):
    """The person is one of ADMIN_IDS (checked on the server for every update)."""

    async def __call__(self, event: TelegramObject, config: Config) -> bool:
        user = getattr(event, "from_user", None)
        return user is not None and user.id in config.admin_ids
