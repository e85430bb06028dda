"""Booking a charger: which device, which time window, a summary with the price
estimate, then Confirm; and /bookings with cancel (user) or accept/reject (merchant).
Refusals (a window taken, the charger gone, too many requests) are answered by
handlers/errors.py; the conversation stays where it was."""

from datetime import datetime

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from handlers.filters import Magic
from services import bookings, cards, payments
from services.cards import CardRole
from services.clock import utcnow
from services.dto import BookingInfo
from services.paging import Page
from services.text import clean
from services.tx import Db, step
from services.windows import parse_window, starting_now
from ui import keyboards
from ui.callbacks import BookCb, BookingAction, BookingCb, PageCb, PageOf
from ui.config import Config
from ui.i18n import Translator, all_variants, keys_by_label
from ui.owed import OwedCalls
from ui.views.booking import (
    LISTS,
    booking_actions,
    booking_text,
    bookings_list,
    cancel_confirm_buttons,
    summary,
)
from ui.views.money import checkout_text, mode_line

QUICK_HOURS = {"btn.now_1h": 1, "btn.now_2h": 2}


class BookForm(StatesGroup):
    kind = State()
    model = State()
    when = State()
    confirm = State()


async def start_booking(
    query: CallbackQuery,
    callback_data: BookCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    async with step(db):
        charger = await bookings.bookable_for(
            db,
            user_id=query.from_user.id,
            charger_id=callback_data.charger_id,
            rules=config.booking_rules,
        )
        await state.clear()
        # the kinds it fits, kept for the next step's answer (no read for it: the step
        # after that reads the charger again, and Confirm checks everything)
        await state.update_data(charger_id=charger.id, kinds=list(charger.device_kinds))
        await state.set_state(BookForm.kind)
    await query.answer()
    labels = [t(f"kind.{k}") for k in charger.device_kinds]
    assert isinstance(query.message, Message)
    await query.message.answer(
        t("booking.ask_kind"),
        reply_markup=keyboards.reply([*keyboards.chunk(labels, 2), [t("btn.cancel")]]),
    )


async def _cancelled(message: Message, state: FSMContext, t: Translator) -> bool:
    if (message.text or "").strip() in all_variants("btn.cancel"):
        await state.clear()
        await message.answer(t("booking.cancelled"), reply_markup=ReplyKeyboardRemove())
        return True
    return False


async def kind(message: Message, state: FSMContext, db: Db, t: Translator) -> None:
    if await _cancelled(message, state, t):
        return
    data = await state.get_data()
    kinds = data.get("kinds")
    if kinds is None:  # a conversation begun before the kinds were kept in it
        kinds = (await bookings.bookable_charger(db, data["charger_id"])).device_kinds
    code = keys_by_label(f"kind.{k}" for k in kinds).get((message.text or "").strip())
    if code is None:
        await message.answer(t("err.choose_button"))
        return
    await state.update_data(kind=code.removeprefix("kind."))
    await state.set_state(BookForm.model)
    await message.answer(
        t("booking.ask_model"), reply_markup=keyboards.reply([[t("btn.skip")], [t("btn.cancel")]])
    )


async def model(message: Message, state: FSMContext, db: Db, t: Translator, config: Config) -> None:
    if await _cancelled(message, state, t):
        return
    # cleaned here: a NUL or a broken character would fail the booking later, on PostgreSQL
    text = clean(message.text, max_len=100)
    assert message.from_user is not None
    # only the quick choices the rules would accept (open then, free, not past)
    now = utcnow()
    choices = [
        ("btn.now_1h", starting_now(1, now)),
        ("btn.now_2h", starting_now(2, now)),
        ("booking.quick_evening", parse_window("today 18:00-20:00", now, config.zone)),
    ]
    # the answer is kept whatever the read below says (written in its transaction)
    await state.update_data(model="" if text in all_variants("btn.skip") else text)
    await state.set_state(BookForm.when)
    async with step(db):
        fits = await bookings.acceptable(
            db,
            user_id=message.from_user.id,
            charger_id=(await state.get_data())["charger_id"],
            windows=[window for _key, window in choices],
            rules=config.booking_rules,
            now=now,
        )
    offered = [t(key) for (key, _window), ok in zip(choices, fits, strict=True) if ok]
    await message.answer(
        t("booking.ask_when"),
        reply_markup=keyboards.reply([*keyboards.chunk(offered, 2), [t("btn.cancel")]]),
    )


async def when(message: Message, state: FSMContext, db: Db, t: Translator, config: Config) -> None:
    if await _cancelled(message, state, t):
        return
    assert message.from_user is not None
    text = (message.text or "").strip()
    now = utcnow()
    quick = keys_by_label(QUICK_HOURS).get(text)
    if quick:
        start, end = starting_now(QUICK_HOURS[quick], now)
    else:
        start, end = parse_window(text, now, config.zone)
    data = await state.get_data()
    async with step(db):
        quote = await bookings.quote(
            db,
            user_id=message.from_user.id,
            charger_id=data["charger_id"],
            start=start,
            end=end,
            rules=config.booking_rules,
            now=now,
        )
        await state.update_data(start=start.isoformat(), end=end.isoformat())
        await state.set_state(BookForm.confirm)
    await message.answer(t("booking.summary_intro"), reply_markup=ReplyKeyboardRemove())
    text, markup = summary(t, quote, data["kind"], data.get("model", ""), config.zone)
    text += "\n" + mode_line(t, config.money)  # how it is paid (#14)
    await message.answer(text, reply_markup=markup)


async def confirm(
    query: CallbackQuery,
    callback_data: BookingCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
    owed: OwedCalls,
) -> None:
    assert isinstance(query.message, Message)
    if callback_data.action == BookingAction.DROP:
        await state.clear()
        await query.answer()
        await query.message.edit_text(t("booking.cancelled"))
        return
    data = await state.get_data()
    # refused (the window taken meanwhile: the refusal lists the free ones), the
    # summary stays, and a window typed now replaces it (``when`` takes it)
    async with step(db):
        booking = await bookings.request(
            db,
            user_id=query.from_user.id,
            charger_id=data["charger_id"],
            device_kind=data["kind"],
            device_model=data.get("model", ""),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            rules=config.booking_rules,
        )
        await state.clear()
    minutes = config.booking_rules.response_minutes
    text = t("booking.sent", id=booking.id, minutes=minutes)
    if config.money.prepaid:  # paid from the wallet, or an invoice follows (the outbox)
        checkout = await payments.checkout_state(
            db, booking_id=booking.id, user_id=query.from_user.id, rules=config.money
        )
        text = checkout_text(t, checkout, config.money.payment_minutes, minutes)
    # the booking is committed: its confirmation comes first and reaches the rider even
    # if Telegram refuses it for now (then through the outbox); the rest is cosmetic
    sent = await owed.deliver(query.message.answer(text))
    await query.answer(t("booking.sent_alert"))
    if sent is not None:  # it follows the booking from now on
        await cards.record(
            db, CardRole.BOOKING, booking.id, sent.chat.id, sent.message_id, shown=booking.status
        )
    await query.message.edit_reply_markup(reply_markup=None)


async def stale_confirm(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("err.stale_button"), show_alert=True)


BOOKINGS_PAGE = 10


async def my_bookings(message: Message, db: Db, t: Translator, config: Config) -> None:
    """One paged message per role the person has: their bookings, their chargers'."""
    assert message.from_user is not None
    views = []
    for of in LISTS:
        page = await _page_of(db, message.from_user.id, of, 0)
        if page.total:
            views.append(bookings_list(t, page, of, config.zone))
    if not views:
        await message.answer(t("booking.none"))
    for text, markup in views:
        await message.answer(text, reply_markup=markup)


async def bookings_page(
    query: CallbackQuery, callback_data: PageCb, db: Db, t: Translator, config: Config
) -> None:
    page = await _page_of(db, query.from_user.id, callback_data.of, callback_data.page)
    text, markup = bookings_list(t, page, callback_data.of, config.zone)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


async def _page_of(db: Db, person: int, of: PageOf, number: int) -> Page[BookingInfo]:
    if of == PageOf.MINE:
        return await bookings.page_of_user(db, person, number, BOOKINGS_PAGE)
    return await bookings.page_of_merchant(db, person, number, BOOKINGS_PAGE)


async def open_booking(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator, config: Config
) -> None:
    """A booking of the list as its own message, with Cancel (its user) or Accept
    and Reject (its merchant) while they apply."""
    presser = query.from_user.id
    booking = await bookings.for_person(db, callback_data.booking_id, presser)
    text = booking_text(t, booking, config.zone)
    markup = booking_actions(t, booking, presser, utcnow())
    await query.answer()
    if isinstance(query.message, Message):
        sent = await query.message.answer(text, reply_markup=markup)
        role = CardRole.BOOKING if presser == booking.user_id else CardRole.BOOKING_REQUEST
        await cards.record(
            db, role, booking.id, sent.chat.id, sent.message_id, shown=booking.status
        )


async def cancel_booking(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator
) -> None:
    """Cancel: at once for a request still waiting; an accepted booking asks first
    (its card's buttons become Yes / Keep)."""
    booking = await bookings.for_person(db, callback_data.booking_id, query.from_user.id)
    if callback_data.action == BookingAction.CANCEL and bookings.cancel_asks_to_confirm(booking):
        await query.answer(t("card.cancel_confirm"), show_alert=True)
        if isinstance(query.message, Message):
            await query.message.edit_reply_markup(
                reply_markup=cancel_confirm_buttons(t, booking.id)
            )
        return
    await bookings.cancel(db, booking_id=callback_data.booking_id, user_id=query.from_user.id)
    await query.answer(t("booking.cancelled_alert"))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)


async def keep_booking(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator
) -> None:
    booking = await bookings.for_person(db, callback_data.booking_id, query.from_user.id)
    await query.answer(t("card.kept"))
    if isinstance(query.message, Message):
        markup = booking_actions(t, booking, query.from_user.id, utcnow())
        await query.message.edit_reply_markup(reply_markup=markup)


async def on_my_way(query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator) -> None:
    await bookings.on_the_way(db, booking_id=callback_data.booking_id, user_id=query.from_user.id)
    await query.answer(t("card.on_the_way_alert"))


def build_router() -> Router:
    router = Router(name="booking")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.callback_query.register(start_booking, BookCb.filter())
    not_command = Magic(~F.text.startswith("/"))
    router.message.register(kind, StateFilter(BookForm.kind), not_command)
    router.message.register(model, StateFilter(BookForm.model), not_command)
    # while the summary is shown, a window typed replaces it
    router.message.register(when, StateFilter(BookForm.when, BookForm.confirm), not_command)
    router.callback_query.register(
        confirm,
        StateFilter(BookForm.confirm),
        BookingCb.filter(F.action.in_({BookingAction.CONFIRM, BookingAction.DROP})),
    )
    router.callback_query.register(
        stale_confirm, BookingCb.filter(F.action.in_({BookingAction.CONFIRM, BookingAction.DROP}))
    )
    router.message.register(my_bookings, Command("bookings"))
    router.callback_query.register(bookings_page, PageCb.filter(F.of.in_(set(LISTS))))
    router.callback_query.register(open_booking, BookingCb.filter(F.action == BookingAction.OPEN))
    router.callback_query.register(
        cancel_booking,
        BookingCb.filter(F.action.in_({BookingAction.CANCEL, BookingAction.CANCEL_YES})),
    )
    router.callback_query.register(keep_booking, BookingCb.filter(F.action == BookingAction.KEEP))
    router.callback_query.register(on_my_way, BookingCb.filter(F.action == BookingAction.ON_WAY))
    return router
