"""/start, /help, /cancel, and a friendly answer to anything no flow expects."""

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from handlers.filters import Magic
from handlers.listing_wizard import in_wizard
from ui.config import Config
from ui.i18n import Translator
from ui.views.cards import welcome_buttons


async def cancel(message: Message, state: FSMContext, t: Translator) -> None:
    """Leave what the person is doing. A listing's draft is never dropped here
    (it has a key of its own): leaving the wizard keeps it for /newlisting; only
    the wizard's own "Cancel" discards it."""
    current = await state.get_state()
    await state.clear()
    if in_wizard(current):
        key = "cancel.draft_kept"
    else:
        key = "cancel.done" if current else "cancel.nothing"
    await message.answer(t(key), reply_markup=ReplyKeyboardRemove())


async def start(message: Message, t: Translator, config: Config) -> None:
    """A short welcome with the two ways in; in the admins' group, their help."""
    if message.chat.id == config.moderation_chat_id:
        await message.answer(t("card.help_group"))
        return
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t("card.welcome", name=name), reply_markup=welcome_buttons(t))


async def help_(message: Message, t: Translator, config: Config) -> None:
    """Help for where it is asked: the admins' group has its own commands."""
    if message.chat.id == config.moderation_chat_id:
        await message.answer(t("card.help_group"))
        return
    money = config.money  # how paying works here (#14)
    paying = (
        t("money_help.prepaid", minutes=money.payment_minutes)
        if money.prepaid
        else t("money_help.at_shop")
    )
    await message.answer(t("help.text") + "\n\n" + paying)


async def unexpected_message(message: Message, t: Translator) -> None:
    await message.answer(t("fallback.message"))


async def unknown_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("err.stale_button"), show_alert=True)


def build_router(moderation_chat_id: int) -> Router:
    router = Router(name="common")
    router.message.register(cancel, Command("cancel"))
    router.message.register(start, CommandStart(), Magic(F.chat.type == "private"))
    router.message.register(start, CommandStart(), Magic(F.chat.id == moderation_chat_id))
    router.message.register(help_, Command("help"))
    return router


def build_fallback_router() -> Router:
    fallback_router = Router(name="fallback")
    fallback_router.message.register(unexpected_message, Magic(F.chat.type == "private"))
    fallback_router.callback_query.register(unknown_button)
    return fallback_router
