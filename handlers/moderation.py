"""The admins' review in the moderation group: Approve, or Reject with a reason.

The router only sees the moderation group. Deciding needs an id in ADMIN_IDS,
checked on the server for every press; anyone else gets an alert. Two admins
pressing at once: the service lets exactly one decision through.
"""

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message

from handlers.filters import IsAdmin, Magic
from services import listings
from services.dto import RevisionStatus
from services.listings import Decision
from services.tx import Db
from ui import keyboards
from ui.callbacks import PageCb, PageOf, ReviewAction, ReviewCb
from ui.config import Config
from ui.i18n import Translator
from ui.notifications import send_review_card
from ui.views.listing import already_decided, pending_list


class RejectForm(StatesGroup):
    reason = State()


def build_router(moderation_chat_id: int) -> Router:
    router = Router(name="moderation")
    router.message.filter(Magic(F.chat.id == moderation_chat_id))
    router.callback_query.filter(Magic(F.message.chat.id == moderation_chat_id))

    router.message.register(pending, Command("pending"), IsAdmin())
    router.callback_query.register(pending_page, PageCb.filter(F.of == PageOf.PENDING), IsAdmin())
    router.callback_query.register(not_an_admin, PageCb.filter(F.of == PageOf.PENDING))
    router.message.register(
        typed_reason,
        StateFilter(RejectForm.reason),
        IsAdmin(),
        Magic(F.text),
        Magic(~F.text.startswith("/")),
    )
    router.callback_query.register(
        approve, ReviewCb.filter(F.action == ReviewAction.APPROVE), IsAdmin()
    )
    router.callback_query.register(
        reject_menu,
        ReviewCb.filter(F.action.in_({ReviewAction.REJECT, ReviewAction.BACK})),
        IsAdmin(),
    )
    router.callback_query.register(
        preset_reason, ReviewCb.filter(F.action == ReviewAction.REASON), IsAdmin()
    )
    router.callback_query.register(
        other_reason, ReviewCb.filter(F.action == ReviewAction.OTHER), IsAdmin()
    )
    router.callback_query.register(
        show_card, ReviewCb.filter(F.action == ReviewAction.SHOW), IsAdmin()
    )
    router.callback_query.register(not_an_admin, ReviewCb.filter())
    router.message.register(not_an_admin_command, Command("pending"))
    return router


async def approve(
    query: CallbackQuery, callback_data: ReviewCb, db: Db, t: Translator, config: Config
) -> None:
    result = await listings.approve(
        db,
        revision_id=callback_data.revision_id,
        admin_id=query.from_user.id,
        moderation_chat_id=config.moderation_chat_id,
    )
    if result.outcome == Decision.ALREADY_DECIDED:
        await query.answer(already_decided(t, result.revision), show_alert=True)
        return
    await query.answer(t("review.approved_alert"))


async def reject_menu(query: CallbackQuery, callback_data: ReviewCb, db: Db, t: Translator) -> None:
    """Swap the card's buttons for the reasons (or back to Approve / Reject)."""
    revision = await listings.get_revision(db, callback_data.revision_id)
    if revision.status != RevisionStatus.PENDING:
        await query.answer(already_decided(t, revision), show_alert=True)
        return
    await query.answer()
    markup = (
        keyboards.reject_reasons(t, revision.id)
        if callback_data.action == ReviewAction.REJECT
        else keyboards.review(t, revision.id)
    )
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=markup)


async def preset_reason(
    query: CallbackQuery, callback_data: ReviewCb, db: Db, t: Translator, config: Config
) -> None:
    result = await listings.reject(
        db,
        revision_id=callback_data.revision_id,
        admin_id=query.from_user.id,
        reason=listings.preset_reason(callback_data.code),
        moderation_chat_id=config.moderation_chat_id,
    )
    if result.outcome == Decision.ALREADY_DECIDED:
        await query.answer(already_decided(t, result.revision), show_alert=True)
        return
    await query.answer(t("review.rejected_alert"))


async def other_reason(
    query: CallbackQuery, callback_data: ReviewCb, state: FSMContext, t: Translator
) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    # ForceReply so the answer reaches the bot even with privacy mode on; only a
    # reply to this prompt is taken as the reason, not the admin's other messages
    prompt = await query.message.reply(
        t("review.ask_reason", admin=query.from_user.first_name, id=callback_data.revision_id),
        reply_markup=ForceReply(selective=True),
    )
    await state.set_state(RejectForm.reason)
    await state.update_data(revision_id=callback_data.revision_id, prompt_id=prompt.message_id)


async def typed_reason(
    message: Message, state: FSMContext, db: Db, t: Translator, config: Config
) -> None:
    """The reason typed in reply to the prompt; a reason refused (too long) is said
    and the state stays for another try."""
    data = await state.get_data()
    reply_to = message.reply_to_message
    if reply_to is None or reply_to.message_id != data.get("prompt_id"):
        raise SkipHandler  # a message about something else, not the reason
    revision_id = data.get("revision_id")
    if revision_id is None:
        await state.clear()
        return
    assert message.from_user is not None
    result = await listings.reject(
        db,
        revision_id=int(revision_id),
        admin_id=message.from_user.id,
        reason=message.text or "",
        moderation_chat_id=config.moderation_chat_id,
    )
    await state.clear()
    if result.outcome == Decision.ALREADY_DECIDED:
        await message.reply(already_decided(t, result.revision))
        return
    await message.reply(t("review.rejected_reply", id=revision_id))


PENDING_PAGE = 10


async def pending(message: Message, db: Db, t: Translator, config: Config) -> None:
    page = await listings.pending_page(db, 0, PENDING_PAGE)
    text, markup = pending_list(t, page, config.zone)
    await message.answer(text, reply_markup=markup)


async def pending_page(
    query: CallbackQuery, callback_data: PageCb, db: Db, t: Translator, config: Config
) -> None:
    page = await listings.pending_page(db, callback_data.page, PENDING_PAGE)
    text, markup = pending_list(t, page, config.zone)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


async def show_card(
    query: CallbackQuery, callback_data: ReviewCb, bot: Bot, db: Db, t: Translator, config: Config
) -> None:
    """Post a pending listing's card again (e.g. the old one scrolled away).

    A callback query takes one answer: a refusal must be that answer, not a
    second one after an empty answer (Telegram refuses it, so no alert showed).
    """
    revision = await listings.get_revision(db, callback_data.revision_id)
    await query.answer()
    await send_review_card(bot, db, config, t, revision.id, config.moderation_chat_id)


async def not_an_admin(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("review.not_admin"), show_alert=True)


async def not_an_admin_command(message: Message, t: Translator) -> None:
    await message.reply(t("review.not_admin"))
