from sqlalchemy.ext.asyncio import AsyncSession

from models import User
from services.tx import transaction

LANGUAGES = ("en", "zh")


def language_for(user: User | None, telegram_language: str | None) -> str:
    """The person's choice, else their Telegram app's language, else English."""
    if user is not None and user.language in LANGUAGES:
        return user.language
    return "zh" if (telegram_language or "").lower().startswith("zh") else "en"


async def touch(
    session: AsyncSession,
    user_id: int,
    first_name: str,
    username: str | None,
    telegram_language: str | None,
) -> User:
    """Load the user, creating or refreshing their profile only when it changed."""
    user = await session.get(User, user_id)
    profile = (first_name, username, telegram_language)
    if user is not None and (user.first_name, user.username, user.telegram_language) == profile:
        return user  # the common case: no write at all
    async with transaction(session):
        user = await session.get(User, user_id, populate_existing=True)
        if user is None:
            user = User(id=user_id)
            session.add(user)
        user.first_name, user.username, user.telegram_language = profile
    return user


async def set_language(session: AsyncSession, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(language)
    async with transaction(session):
        stored = await session.get(User, user.id, populate_existing=True)
        if stored is not None:
            stored.language = language
    user.language = language
