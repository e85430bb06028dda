"""The merchant's answer to a booking: Accept, or Reject with a reason.

Only the merchant who owns the charger can decide (checked in the service for
every press); a repeated or stale press changes nothing and says why.
"""

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message

from handlers.booking import status_params
from services import bookings
from services.bookings import REJECT_PRESETS
from services.errors import DomainError
from services.text import TEXT_ERRORS
from services.tx import Db
from ui import keyboards
from ui.callbacks import BookingCb
from ui.i18n import Translator
from ui.owed import OwedCalls


class RejectBookingForm(StatesGroup):
    reason = State()


async def _refuse(query: CallbackQuery, t: Translator, error: DomainError) -> None:
    await query.answer(t(error.key, **status_params(t, error)), show_alert=True)


async def accept(
    query: CallbackQuery,
    callback_data: BookingCb,
    db: Db,
    t: Translator,
    owed: OwedCalls,
) -> None:
    try:
        booking = await bookings.accept(
            db, booking_id=callback_data.booking_id, merchant_id=query.from_user.id
        )
    except DomainError as error:
        await _refuse(query, t, error)
        return
    # committed: the merchant's confirmation first, kept for later if Telegram refuses it
    if isinstance(query.message, Message):
        await owed.deliver(query.message.reply(t("booking.accepted_merchant", id=booking.id)))
    await query.answer(t("booking.accepted_alert"))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)


async def reject_menu(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator
) -> None:
    try:
        booking = await bookings.get(db, callback_data.booking_id)
    except DomainError as error:
        await _refuse(query, t, error)
        return
    if booking.merchant_id != query.from_user.id:
        await query.answer(t("err.not_your_booking"), show_alert=True)
        return
    await query.answer()
    markup = (
        keyboards.booking_reject_reasons(t, booking.id)
        if callback_data.action == "reject"
        else keyboards.booking_decision(t, booking.id)
    )
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=markup)


async def preset(query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator) -> None:
    if callback_data.code not in REJECT_PRESETS:
        await query.answer(t("err.reason_unknown"), show_alert=True)
        return
    try:
        await bookings.reject(
            db,
            booking_id=callback_data.booking_id,
            merchant_id=query.from_user.id,
            reason=f"preset:{callback_data.code}",
        )
    except DomainError as error:
        await _refuse(query, t, error)
        return
    await query.answer(t("booking.rejected_alert"))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)


async def other(
    query: CallbackQuery, callback_data: BookingCb, state: FSMContext, t: Translator
) -> None:
    await query.answer()
    await state.set_state(RejectBookingForm.reason)
    await state.update_data(booking_id=callback_data.booking_id)
    if isinstance(query.message, Message):
        await query.message.answer(
            t("booking.ask_reason", id=callback_data.booking_id), reply_markup=ForceReply()
        )


async def typed_reason(
    message: Message, state: FSMContext, db: Db, t: Translator, owed: OwedCalls
) -> None:
    booking_id = (await state.get_data()).get("booking_id")
    assert message.from_user is not None
    try:
        await bookings.reject(
            db,
            booking_id=int(booking_id or 0),
            merchant_id=message.from_user.id,
            reason=message.text or "",
        )
    except DomainError as error:
        if error.key in TEXT_ERRORS:
            await message.answer(t(error.key, **error.params))
            return  # stay: type it again
        await state.clear()
        await message.answer(t(error.key, **status_params(t, error)))
        return
    await state.clear()
    await owed.deliver(message.answer(t("booking.rejected_reply", id=booking_id)))


def build_router() -> Router:
    router = Router(name="booking_decisions")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.callback_query.register(accept, BookingCb.filter(F.action == "accept"))
    router.callback_query.register(reject_menu, BookingCb.filter(F.action.in_({"reject", "back"})))
    router.callback_query.register(preset, BookingCb.filter(F.action == "reason"))
    router.callback_query.register(other, BookingCb.filter(F.action == "other"))
    router.message.register(typed_reason, RejectBookingForm.reason, F.text, ~F.text.startswith("/"))
    return router
