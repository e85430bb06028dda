"""Per-update objects for handlers: a database session (``db``), the user, a translator."""

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.types import User as TgUser

from bot.fsm_storage import SqlStorage
from services import users
from services.tx import Db, OpenDb
from ui.i18n import translator

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class DbSessionMiddleware(BaseMiddleware):
    """Opens one database session (``db``) per update; afterwards wakes the outbox sender, since
    the handler may have committed messages owed to someone."""

    def __init__(self, open_db: OpenDb, after: Callable[[], None] | None = None) -> None:
        self._open_db = open_db
        self._after = after

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self._open_db() as db:
            data["db"] = db
            try:
                return await handler(event, data)
            finally:
                if self._after is not None:
                    self._after()


class OneFsmWritePerUpdate(BaseMiddleware):
    """A conversation step's writes (aiogram's ``update_data`` then ``set_state``)
    reach the database as one statement: in the handler's ``step`` transaction
    (services/tx.py) if it has one, else at the update's end (bot/fsm_storage.py)."""

    def __init__(self, storage: SqlStorage) -> None:
        self._storage = storage

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self._storage.one_write_per_update():
            return await handler(event, data)


class UserContextMiddleware(BaseMiddleware):
    """Injects ``user`` (a plain ``UserProfile``, never an ORM row), ``t`` (a
    translator in their language) and ``known_users`` (the cache, which
    ``users.set_language`` keeps current).

    In groups the group's language is used, as one chat has many readers.
    ``known_users``: how many users to keep in memory (0 when several instances
    may write them).
    """

    def __init__(self, group_language: str, known_users: int = 0) -> None:
        self._group_language = group_language
        self._known = users.KnownUsers(known_users)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        chat = data.get("event_chat")
        data["known_users"] = self._known
        if tg_user is None:
            data["t"] = translator(self._group_language)
            return await handler(event, data)
        db: Db = data["db"]
        user = await users.touch(
            db,
            tg_user.id,
            tg_user.first_name,
            tg_user.username,
            tg_user.language_code,
            self._known,
        )
        if db.in_transaction():
            # end the read: the connection goes back to the pool while the
            # handler waits on Telegram or on the FSM storage's own database session
            await db.commit()
        data["user"] = user
        private = chat is None or chat.type == "private"
        language = (
            users.language_for(user, tg_user.language_code) if private else self._group_language
        )
        data["t"] = translator(language)
        return await handler(event, data)
