"""Booking a charger: which device, which time window, a summary with the price
estimate, then Confirm; and /bookings with cancel (user) or accept/reject (merchant)."""

from datetime import datetime, timedelta

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyKeyboardRemove
from aiogram.utils.keyboard import InlineKeyboardBuilder

from models import Booking, BookingStatus, Listing
from models.base import utcnow
from services import bookings
from services.bookings import estimate_minor
from services.errors import DomainError, InvalidInput
from services.paging import Page
from services.text import clean
from services.tx import Db
from services.windows import parse_window
from ui import keyboards, paging
from ui.callbacks import BookCb, BookingCb, PageCb
from ui.config import Config
from ui.i18n import Translator, all_variants, keys_by_label
from ui.owed import OwedCalls
from ui.views.booking import booking_text, money, tariff_text, window_text
from ui.views.listing import fit

QUICK_HOURS = {"btn.now_1h": 1, "btn.now_2h": 2}


class BookForm(StatesGroup):
    kind = State()
    model = State()
    when = State()
    confirm = State()


async def error_text(t: Translator, error: DomainError, config: Config) -> str:
    params = dict(error.params)
    if "free" in params:
        windows = [
            window_text(datetime.fromisoformat(s), datetime.fromisoformat(e), config.zone)
            for s, e in params.pop("free")
        ]
        free = "\n".join(f"• {w}" for w in windows) or t("booking.no_free")
        return t(error.key, **params) + "\n" + t("booking.free_windows", windows=free)
    return t(error.key, **params)


async def start_booking(
    query: CallbackQuery,
    callback_data: BookCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    try:
        charger = await bookings.bookable_charger(db, callback_data.charger_id)
        # said now rather than after every question (the request checks it again)
        await bookings.check_request_limits(
            db, query.from_user.id, None, None, None, config.booking_rules
        )
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    await query.answer()
    await state.clear()
    await state.update_data(charger_id=charger.id)
    await state.set_state(BookForm.kind)
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
    try:
        charger = await bookings.bookable_charger(db, data["charger_id"])
    except DomainError as error:
        await state.clear()
        await message.answer(t(error.key, **error.params), reply_markup=ReplyKeyboardRemove())
        return
    code = keys_by_label(f"kind.{k}" for k in charger.device_kinds).get(
        (message.text or "").strip()
    )
    if code is None:
        await message.answer(t("err.choose_button"))
        return
    await state.update_data(kind=code.removeprefix("kind."))
    await state.set_state(BookForm.model)
    await message.answer(
        t("booking.ask_model"), reply_markup=keyboards.reply([[t("btn.skip")], [t("btn.cancel")]])
    )


async def model(message: Message, state: FSMContext, t: Translator) -> None:
    if await _cancelled(message, state, t):
        return
    try:  # a NUL or a broken character would fail the booking later, on PostgreSQL
        text = clean(message.text, max_len=100)
    except DomainError as error:
        await message.answer(t(error.key, **error.params))
        return
    await state.update_data(model="" if text in all_variants("btn.skip") else text)
    await state.set_state(BookForm.when)
    await message.answer(
        t("booking.ask_when"),
        reply_markup=keyboards.reply(
            [[t("btn.now_1h"), t("btn.now_2h")], [t("booking.quick_evening")], [t("btn.cancel")]]
        ),
    )


async def when(message: Message, state: FSMContext, db: Db, t: Translator, config: Config) -> None:
    if await _cancelled(message, state, t):
        return
    text = (message.text or "").strip()
    now = utcnow()
    quick = keys_by_label(QUICK_HOURS).get(text)
    try:
        if quick:
            start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            end = start + timedelta(hours=QUICK_HOURS[quick])
        else:
            start, end = parse_window(text, now, config.zone)
        data = await state.get_data()
        charger = await bookings.bookable_charger(db, data["charger_id"])
        await bookings.check_window(db, charger, start, end, now, config.booking_rules)
        assert message.from_user is not None
        await bookings.check_request_limits(
            db, message.from_user.id, charger.id, start, end, config.booking_rules
        )
    except InvalidInput as error:
        await message.answer(await error_text(t, error, config))
        return
    except DomainError as error:
        await state.clear()
        await message.answer(t(error.key, **error.params), reply_markup=ReplyKeyboardRemove())
        return
    await state.update_data(start=start.isoformat(), end=end.isoformat())
    await state.set_state(BookForm.confirm)
    listing = await db.get(Listing, charger.listing_id)
    estimate = estimate_minor(charger.price_minor, charger.price_unit, start, end)
    await message.answer(t("booking.summary_intro"), reply_markup=ReplyKeyboardRemove())
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn.confirm"), callback_data=BookingCb(action="confirm"))
    builder.button(text=t("btn.cancel"), callback_data=BookingCb(action="drop"))
    await message.answer(
        t(
            "booking.summary",
            shop=listing.shop_name if listing else "",
            device=t(f"kind.{data['kind']}"),
            model=data.get("model") or t("view.any_model"),
            window=window_text(start, end, config.zone),
            tariff=tariff_text(t, charger.price_minor, charger.price_unit, charger.currency),
            estimate=money(estimate, charger.currency)
            if estimate is not None
            else t("booking.estimate_kwh"),
        ),
        reply_markup=builder.as_markup(),
    )


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
    if callback_data.action == "drop":
        await state.clear()
        await query.answer()
        await query.message.edit_text(t("booking.cancelled"))
        return
    data = await state.get_data()
    try:
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
    except InvalidInput as error:  # the window: another one may do
        await query.answer()
        await query.message.answer(await error_text(t, error, config))
        await state.set_state(BookForm.when)
        await query.message.answer(t("booking.ask_when"))
        return
    except DomainError as error:  # the charger is gone, too many requests, …
        await state.clear()
        await query.answer()
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(t(error.key, **error.params))
        return
    await state.clear()
    # the booking is committed: its confirmation comes first and reaches the rider even
    # if Telegram refuses it for now (then through the outbox); the rest is cosmetic
    await owed.deliver(
        query.message.answer(
            t("booking.sent", id=booking.id, minutes=config.booking_rules.response_minutes)
        )
    )
    await query.answer(t("booking.sent_alert"))
    await query.message.edit_reply_markup(reply_markup=None)


async def stale_confirm(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("err.stale_button"), show_alert=True)


BOOKINGS_PAGE = 10
_LISTS = {"mine": "booking.mine", "incoming": "booking.incoming"}


async def _bookings_view(
    db: Db, t: Translator, config: Config, person: int, of: str, number: int
) -> tuple[Page[Booking], str, InlineKeyboardMarkup | None]:
    """One page of the person's bookings (``mine``) or their chargers' (``incoming``):
    a line each, and a button that opens the booking with what can be done to it."""
    if of == "mine":
        page = await bookings.page_of_user(db, person, number, BOOKINGS_PAGE)
    else:
        page = await bookings.page_of_merchant(db, person, number, BOOKINGS_PAGE)
    lines = []
    for booking in page.items:
        listing = await db.get(Listing, booking.charger.listing_id)
        lines.append(
            t(
                "booking.line",
                id=booking.id,
                shop=listing.shop_name if listing else "",
                window=window_text(booking.start_at, booking.end_at, config.zone),
                status=t(f"booking.status_{booking.status.value}"),
            )
        )
    header = t("booking.list_header", title=t(_LISTS[of]), page=paging.counter(t, page))
    builder = InlineKeyboardBuilder()
    for booking in page.items:
        builder.button(
            text=f"#{booking.id}", callback_data=BookingCb(action="open", booking_id=booking.id)
        )
    builder.adjust(5)
    markup = paging.with_nav(t, of, page, builder.as_markup())
    return page, fit(header + "\n" + "\n".join(lines)), markup


async def my_bookings(message: Message, db: Db, t: Translator, config: Config) -> None:
    """One paged message per role the person has: their bookings, their chargers'."""
    assert message.from_user is not None
    views = []
    for of in _LISTS:
        page, text, markup = await _bookings_view(db, t, config, message.from_user.id, of, 0)
        if page.total:
            views.append((text, markup))
    await db.commit()  # no transaction left open while Telegram answers
    if not views:
        await message.answer(t("booking.none"))
    for text, markup in views:
        await message.answer(text, reply_markup=markup)


async def bookings_page(
    query: CallbackQuery,
    callback_data: PageCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    _, text, markup = await _bookings_view(
        db, t, config, query.from_user.id, callback_data.of, callback_data.page
    )
    await db.commit()
    await query.answer()
    if isinstance(query.message, Message):
        await keyboards.edit_text_safely(query.message, text, markup)


async def open_booking(
    query: CallbackQuery,
    callback_data: BookingCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    """A booking of the list as its own message, with Cancel (its user) or Accept
    and Reject (its merchant) while they apply."""
    try:
        booking = await bookings.get(db, callback_data.booking_id)
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    presser = query.from_user.id
    if presser not in (booking.user_id, booking.merchant_id):
        await query.answer(t("err.not_your_booking"), show_alert=True)
        return
    listing = await db.get(Listing, booking.charger.listing_id)
    text = booking_text(t, booking, config.zone, listing.shop_name if listing else "")
    builder = InlineKeyboardBuilder()
    cancellable = booking.status in bookings.OPEN and booking.start_at > utcnow()
    if presser == booking.user_id and cancellable:
        builder.button(
            text=t("btn.cancel_booking"),
            callback_data=BookingCb(action="cancel", booking_id=booking.id),
        )
    if presser == booking.merchant_id and booking.status == BookingStatus.REQUESTED:
        builder.button(
            text=t("btn.accept"), callback_data=BookingCb(action="accept", booking_id=booking.id)
        )
        builder.button(
            text=t("btn.reject"), callback_data=BookingCb(action="reject", booking_id=booking.id)
        )
    await db.commit()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            text, reply_markup=builder.as_markup() if builder.buttons else None
        )


async def cancel_booking(
    query: CallbackQuery, callback_data: BookingCb, db: Db, t: Translator
) -> None:
    try:
        await bookings.cancel(db, booking_id=callback_data.booking_id, user_id=query.from_user.id)
    except DomainError as error:
        await query.answer(t(error.key, **status_params(t, error)), show_alert=True)
        return
    await query.answer(t("booking.cancelled_alert"))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)


def status_params(t: Translator, error: DomainError) -> dict[str, object]:
    params = dict(error.params)
    if "status" in params:
        params["status"] = t(f"booking.status_{params['status']}")
    return params


def build_router() -> Router:
    router = Router(name="booking")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.callback_query.register(start_booking, BookCb.filter())
    not_command = ~F.text.startswith("/")
    router.message.register(kind, BookForm.kind, not_command)
    router.message.register(model, BookForm.model, not_command)
    router.message.register(when, BookForm.when, not_command)
    router.callback_query.register(
        confirm, BookForm.confirm, BookingCb.filter(F.action.in_({"confirm", "drop"}))
    )
    router.callback_query.register(
        stale_confirm, BookingCb.filter(F.action.in_({"confirm", "drop"}))
    )
    router.message.register(my_bookings, Command("bookings"))
    router.callback_query.register(bookings_page, PageCb.filter(F.of.in_(set(_LISTS))))
    router.callback_query.register(open_booking, BookingCb.filter(F.action == "open"))
    router.callback_query.register(cancel_booking, BookingCb.filter(F.action == "cancel"))
    return router
