"""/start, /help, /cancel, and a friendly answer to anything no flow expects."""

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.i18n import Translator

router = Router(name="common")
fallback_router = Router(name="fallback")


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext, t: Translator) -> None:
    current = await state.get_state()
    await state.clear()
    key = "cancel.done" if current else "cancel.nothing"
    await message.answer(t(key), reply_markup=ReplyKeyboardRemove())


@router.message(CommandStart(), F.chat.type == "private")
async def start(message: Message, t: Translator) -> None:
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t("start.welcome", name=name))


@router.message(Command("help"))
async def help_(message: Message, t: Translator) -> None:
    await message.answer(t("help.text"))


@fallback_router.message(F.chat.type == "private")
async def unexpected_message(message: Message, t: Translator) -> None:
    await message.answer(t("fallback.message"))


@fallback_router.callback_query()
async def unknown_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("err.stale_button"), show_alert=True)
