"""The people who write to the bot: their profile, and the language they read.

What leaves this module is a frozen ``UserProfile`` (plain values), never the ORM
row: a row kept past its session (the in-process cache below, a handler's
parameter) is expired by a rollback of any later unit of work that loaded it,
and then fails on every attribute access (DetachedInstanceError).
"""

from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from models import User
from services.lru import Lru
from services.tx import Db, read, transaction

LANGUAGES = ("en", "zh")


@dataclass(frozen=True, slots=True)
class UserProfile:
    id: int
    first_name: str
    username: str | None
    telegram_language: str | None
    language: str | None  # chosen with /language; None: follow the Telegram app

    @classmethod
    def of(cls, row: User) -> "UserProfile":
        return cls(row.id, row.first_name, row.username, row.telegram_language, row.language)


class _HasLanguage(Protocol):
    @property
    def language(self) -> str | None: ...


def language_for(user: _HasLanguage | None, telegram_language: str | None) -> str:
    """The person's choice, else their Telegram app's language, else English."""
    if user is not None and user.language in LANGUAGES:
        return user.language
    return "zh" if (telegram_language or "").lower().startswith("zh") else "en"


class KnownUsers(Lru[int, UserProfile]):
    """The users this process saw last, so that an update from someone known costs
    no query. Only true while this process is the only one writing users (one
    polling process); ``size=0`` turns it off (several webhook instances)."""

    def keep(self, user: UserProfile) -> None:
        self.put(user.id, user)


async def touch(
    db: Db,
    user_id: int,
    first_name: str,
    username: str | None,
    telegram_language: str | None,
    known: KnownUsers | None = None,
) -> UserProfile:
    """The user's profile, creating or refreshing their row only when it changed.

    ``known`` is current: every write to users goes through this module, which
    updates it after the write commits (a write that fails leaves it as it was).
    """
    user = known.get(user_id) if known is not None else None
    if user is None:
        row = await db.get(User, user_id)
        user = UserProfile.of(row) if row is not None else None
    if user is not None and (user.first_name, user.username, user.telegram_language) == (
        first_name,
        username,
        telegram_language,
    ):
        if known is not None:
            known.keep(user)
        return user  # the common case: no write at all
    for attempt in (1, 2):
        try:
            async with transaction(db):
                row = await db.get(User, user_id, populate_existing=True)
                if row is None:
                    row = User(id=user_id)
                    db.add(row)
                row.first_name, row.username, row.telegram_language = (
                    first_name,
                    username,
                    telegram_language,
                )
                await db.flush()
                user = UserProfile.of(row)
            break
        except IntegrityError:
            # a first message in a group and in private at once (two updates, two
            # locks): the other one created the row first; read it and update it
            db.expunge_all()
            if attempt == 2:
                raise
    assert user is not None  # the loop made or read it, or raised
    if known is not None:
        known.keep(user)
    return user


async def set_language(
    db: Db, user: UserProfile, language: str, known: KnownUsers | None = None
) -> UserProfile:
    """Store the person's choice; returns their profile with it (also in ``known``)."""
    if language not in LANGUAGES:
        raise ValueError(language)
    async with transaction(db):
        stored = await db.get(User, user.id, populate_existing=True)
        if stored is not None:
            stored.language = language
    chosen = replace(user, language=language)
    if known is not None:
        known.keep(chosen)
    return chosen


async def profile(db: Db, user_id: int) -> UserProfile | None:
    """Someone who wrote to the bot (None: never did)."""
    async with read(db):
        row = await db.get(User, user_id)
        return UserProfile.of(row) if row is not None else None


async def id_by_username(db: Db, username: str) -> int | None:
    """The id of the user who last wrote to the bot as ``@username`` (any case)."""
    name = username.removeprefix("@").strip().lower()
    if not name:
        return None
    return await db.scalar(
        select(User.id).where(func.lower(User.username) == name).order_by(User.id).limit(1)
    )
