"""The admins' review in the moderation group: Approve, or Reject with a reason.

The router only sees the moderation group. Deciding needs an id in ADMIN_IDS,
checked on the server for every press; anyone else gets an alert. Two admins
pressing at once: the service lets exactly one decision through.
"""

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import BaseFilter, Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)

from services import listings
from services.errors import DomainError
from services.listings import Decision, DecisionResult
from services.tx import Db
from ui import keyboards, paging
from ui.callbacks import PageCb, ReviewCb
from ui.config import Config
from ui.i18n import Translator
from ui.notifications import is_not_modified, send_review_card
from ui.views.listing import fit, when


class RejectForm(StatesGroup):
    reason = State()


class IsAdmin(BaseFilter):
    async def __call__(self, event: TelegramObject, config: Config) -> bool:
        user = getattr(event, "from_user", None)
        return user is not None and user.id in config.admin_ids


def build_router(moderation_chat_id: int) -> Router:
    router = Router(name="moderation")
    router.message.filter(F.chat.id == moderation_chat_id)
    router.callback_query.filter(F.message.chat.id == moderation_chat_id)

    router.message.register(pending, Command("pending"), IsAdmin())
    router.callback_query.register(pending_page, PageCb.filter(F.of == "pending"), IsAdmin())
    router.callback_query.register(not_an_admin, PageCb.filter(F.of == "pending"))
    router.message.register(
        typed_reason, RejectForm.reason, IsAdmin(), F.text, ~F.text.startswith("/")
    )
    router.callback_query.register(approve, ReviewCb.filter(F.action == "approve"), IsAdmin())
    router.callback_query.register(
        reject_menu, ReviewCb.filter(F.action.in_({"reject", "back"})), IsAdmin()
    )
    router.callback_query.register(preset_reason, ReviewCb.filter(F.action == "reason"), IsAdmin())
    router.callback_query.register(other_reason, ReviewCb.filter(F.action == "other"), IsAdmin())
    router.callback_query.register(show_card, ReviewCb.filter(F.action == "show"), IsAdmin())
    router.callback_query.register(not_an_admin, ReviewCb.filter())
    router.message.register(not_an_admin_command, Command("pending"))
    return router


async def _told_decided(query: CallbackQuery, t: Translator, result: DecisionResult) -> None:
    revision = result.revision
    await query.answer(
        t(
            "review.already_decided",
            status=t(f"status.{revision.status.value}"),
            admin=str(revision.decided_by or "—"),
        ),
        show_alert=True,
    )


async def approve(
    query: CallbackQuery,
    callback_data: ReviewCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    try:
        result = await listings.approve(
            db,
            revision_id=callback_data.revision_id,
            admin_id=query.from_user.id,
            moderation_chat_id=config.moderation_chat_id,
        )
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    if result.outcome == Decision.ALREADY_DECIDED:
        await _told_decided(query, t, result)
        return
    await query.answer(t("review.approved_alert"))


async def reject_menu(query: CallbackQuery, callback_data: ReviewCb, db: Db, t: Translator) -> None:
    """Swap the card's buttons for the reasons (or back to Approve / Reject)."""
    try:
        revision = await listings.get_revision(db, callback_data.revision_id)
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    if revision.status.value != "pending":
        await _told_decided(query, t, DecisionResult(Decision.ALREADY_DECIDED, revision))
        return
    await query.answer()
    markup = (
        keyboards.reject_reasons(t, revision.id)
        if callback_data.action == "reject"
        else keyboards.review(t, revision.id)
    )
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=markup)
        except TelegramBadRequest as error:
            if not is_not_modified(error):
                raise


async def _reject(
    query_or_message: CallbackQuery | Message,
    db: Db,
    t: Translator,
    config: Config,
    revision_id: int,
    reason: str,
) -> DecisionResult | None:
    admin = query_or_message.from_user
    assert admin is not None
    try:
        return await listings.reject(
            db,
            revision_id=revision_id,
            admin_id=admin.id,
            reason=reason,
            moderation_chat_id=config.moderation_chat_id,
        )
    except DomainError as error:
        if isinstance(query_or_message, CallbackQuery):
            await query_or_message.answer(t(error.key, **error.params), show_alert=True)
        else:
            await query_or_message.reply(t(error.key, **error.params))
        return None


async def preset_reason(
    query: CallbackQuery,
    callback_data: ReviewCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    try:
        reason = listings.preset_reason(callback_data.code)
    except DomainError as error:
        await query.answer(t(error.key), show_alert=True)
        return
    result = await _reject(query, db, t, config, callback_data.revision_id, reason)
    if result is None:
        return
    if result.outcome == Decision.ALREADY_DECIDED:
        await _told_decided(query, t, result)
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
    data = await state.get_data()
    reply_to = message.reply_to_message
    if reply_to is None or reply_to.message_id != data.get("prompt_id"):
        raise SkipHandler  # a message about something else, not the reason
    revision_id = data.get("revision_id")
    if revision_id is None:
        await state.clear()
        return
    result = await _reject(message, db, t, config, int(revision_id), message.text or "")
    if result is None:
        return  # the reason was refused (too long); the state stays for another try
    await state.clear()
    if result.outcome == Decision.ALREADY_DECIDED:
        await message.reply(
            t(
                "review.already_decided",
                status=t(f"status.{result.revision.status.value}"),
                admin=str(result.revision.decided_by or "—"),
            )
        )
        return
    await message.reply(t("review.rejected_reply", id=revision_id))


PENDING_PAGE = 10


async def _pending_view(
    db: Db, t: Translator, config: Config, number: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of what waits for review: a line and a card button for each."""
    page = await listings.pending_page(db, number, PENDING_PAGE)
    if not page.items:
        return t("review.none_pending"), None
    lines = [
        t(
            "review.pending_line",
            id=r.id,
            shop=r.data.get("shop_name") or "—",
            when=when(r.submitted_at, config.zone),
        )
        for r in page.items
    ]
    header = t("review.pending_header", count=page.total, page=paging.counter(t, page))
    markup = paging.with_nav(
        t, "pending", page, keyboards.show_cards([r.id for r in page.items], t)
    )
    return fit(header + "\n" + "\n".join(lines)), markup


async def pending(message: Message, db: Db, t: Translator, config: Config) -> None:
    text, markup = await _pending_view(db, t, config, 0)
    await db.commit()  # no transaction left open while Telegram answers
    await message.answer(text, reply_markup=markup)


async def pending_page(
    query: CallbackQuery,
    callback_data: PageCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    text, markup = await _pending_view(db, t, config, callback_data.page)
    await db.commit()
    await query.answer()
    if isinstance(query.message, Message):
        await keyboards.edit_text_safely(query.message, text, markup)


async def show_card(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    """Post a pending listing's card again (e.g. the old one scrolled away).

    A callback query takes one answer: a refusal must be that answer, not a
    second one after an empty answer (Telegram refuses it, so no alert showed).
    """
    try:
        await listings.get_revision(db, callback_data.revision_id)
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    await query.answer()
    await send_review_card(bot, db, config, t, callback_data.revision_id, config.moderation_chat_id)


async def not_an_admin(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("review.not_admin"), show_alert=True)


async def not_an_admin_command(message: Message, t: Translator) -> None:
    await message.reply(t("review.not_admin"))
