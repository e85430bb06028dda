"""The merchant's answer to a booking: Accept, or Reject with a reason.

Only the merchant who owns the charger can decide (checked in the service for
every press); a repeated or stale press changes nothing and says why (the
refusal is answered by handlers/errors.py).
"""

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message

from handlers.filters import Magic
from services import bookings
from services.tx import Db
from ui import keyboards
from ui.callbacks import BookingAction, BookingCb
from ui.i18n import Translator
from ui.owed import OwedCalls


class RejectBookingForm(StatesGroup):
    reason = State()


async def accept(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator, owed: OwedCalls
) -> None:
    booking = await bookings.accept(
        db, booking_id=callback_data.booking_id, merchant_id=query.from_user.id
    )
    # committed: the merchant's confirmation first, kept for later if Telegram refuses it
    if isinstance(query.message, Message):
        await owed.deliver(query.message.reply(t("booking.accepted_merchant", id=booking.id)))
    await query.answer(t("booking.accepted_alert"))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)


async def reject_menu(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator
) -> None:
    booking = await bookings.for_merchant(db, callback_data.booking_id, query.from_user.id)
    await query.answer()
    markup = (
        keyboards.booking_reject_reasons(t, booking.id)
        if callback_data.action == BookingAction.REJECT
        else keyboards.booking_decision(t, booking.id)
    )
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=markup)


async def preset(query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator) -> None:
    await bookings.reject(
        db,
        booking_id=callback_data.booking_id,
        merchant_id=query.from_user.id,
        reason=bookings.preset_reason(callback_data.code),
    )
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
    """The reason typed; refused (too long, the booking decided meanwhile), the
    question stays and the next reply is taken as the reason."""
    booking_id = (await state.get_data()).get("booking_id")
    assert message.from_user is not None
    await bookings.reject(
        db,
        booking_id=int(booking_id or 0),
        merchant_id=message.from_user.id,
        reason=message.text or "",
    )
    await state.clear()
    await owed.deliver(message.answer(t("booking.rejected_reply", id=booking_id)))


def build_router() -> Router:
    router = Router(name="booking_decisions")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.callback_query.register(accept, BookingCb.filter(F.action == BookingAction.ACCEPT))
    router.callback_query.register(
        reject_menu, BookingCb.filter(F.action.in_({BookingAction.REJECT, BookingAction.BACK}))
    )
    router.callback_query.register(preset, BookingCb.filter(F.action == BookingAction.REASON))
    router.callback_query.register(other, BookingCb.filter(F.action == BookingAction.OTHER))
    router.message.register(
        typed_reason,
        StateFilter(RejectBookingForm.reason),
        Magic(F.text),
        Magic(~F.text.startswith("/")),
    )
    return router
