"""Filters shared by the routers."""

from aiogram.filters import BaseFilter
from aiogram.types import TelegramObject

from ui.config import Config


class IsAdmin(BaseFilter):
    """The person is one of ADMIN_IDS (checked on the server for every update)."""

    async def __call__(self, event: TelegramObject, config: Config) -> bool:
        user = getattr(event, "from_user", None)
        return user is not None and user.id in config.admin_ids
