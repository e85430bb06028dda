from sqlalchemy.ext.asyncio import AsyncSession

from models import User
from services.lru import Lru
from services.tx import transaction

LANGUAGES = ("en", "zh")


def language_for(user: User | None, telegram_language: str | None) -> str:
    """The person's choice, else their Telegram app's language, else English."""
    if user is not None and user.language in LANGUAGES:
        return user.language
    return "zh" if (telegram_language or "").lower().startswith("zh") else "en"


class KnownUsers(Lru[int, User]):
    """The users this process saw last, so that an update from someone known costs
    no query. Only true while this process is the only one writing users (one
    polling process); ``size=0`` turns it off (several webhook instances)."""

    def keep(self, user: User) -> None:
        self.put(user.id, user)


async def touch(
    session: AsyncSession,
    user_id: int,
    first_name: str,
    username: str | None,
    telegram_language: str | None,
    known: KnownUsers | None = None,
) -> User:
    """Load the user, creating or refreshing their profile only when it changed.

    A user from ``known`` is a row of an earlier session (detached): its columns
    are current, as every write to users goes through this module and updates it.
    """
    profile = (first_name, username, telegram_language)
    user = known.get(user_id) if known is not None else None
    if user is None:
        user = await session.get(User, user_id)
    if user is not None and (user.first_name, user.username, user.telegram_language) == profile:
        if known is not None:
            known.keep(user)
        return user  # the common case: no write at all
    async with transaction(session):
        user = await session.get(User, user_id, populate_existing=True)
        if user is None:
            user = User(id=user_id)
            session.add(user)
        user.first_name, user.username, user.telegram_language = profile
    if known is not None:
        known.keep(user)
    return user


async def set_language(session: AsyncSession, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(language)
    async with transaction(session):
        stored = await session.get(User, user.id, populate_existing=True)
        if stored is not None:
            stored.language = language
    user.language = language
