from sqlalchemy.ext.asyncio import AsyncSession

from models import User

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
    if user is None:
        user = User(
            id=user_id,
            first_name=first_name,
            username=username,
            telegram_language=telegram_language,
        )
        session.add(user)
        await session.commit()
    elif (user.first_name, user.username, user.telegram_language) != (
        first_name,
        username,
        telegram_language,
    ):
        user.first_name, user.username = first_name, username
        user.telegram_language = telegram_language
        await session.commit()
    return user


async def set_language(session: AsyncSession, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(language)
    user.language = language
    await session.commit()
