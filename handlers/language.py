"""/language: choose English or Simplified Chinese; the choice is stored."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from handlers.filters import Magic
from services import users
from services.tx import Db
from services.users import KnownUsers, UserProfile
from ui import keyboards
from ui.callbacks import LanguageCb
from ui.i18n import LANGUAGES, Translator, translator


async def choose_language(message: Message, t: Translator) -> None:
    await message.answer(t("language.choose"), reply_markup=keyboards.language_picker())


async def set_language(
    query: CallbackQuery,
    callback_data: LanguageCb,
    user: UserProfile,
    db: Db,
    known_users: KnownUsers,
) -> None:
    await users.set_language(db, user, callback_data.code, known_users)
    t = translator(callback_data.code)
    await query.answer(t("language.saved"))
    if isinstance(query.message, Message):
        await query.message.edit_text(t("language.saved"))


def build_router() -> Router:
    router = Router(name="language")
    router.message.register(choose_language, Command("language"), Magic(F.chat.type == "private"))
    router.callback_query.register(set_language, LanguageCb.filter(F.code.in_(LANGUAGES)))
    return router
