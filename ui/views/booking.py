"""Texts about bookings and search results, shared by handlers and notifications."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup

from services import bookings
from services.bookings import REJECT_PRESETS, Quote
from services.dto import BookingInfo, ChargerInfo, ListingInfo
from services.money import format_minor
from services.paging import Page
from services.search import Hit, opening
from ui import paging
from ui.callbacks import BookCb, BookingAction, BookingCb, FindAction, FindCb, PageOf
from ui.i18n import Html, Translator
from ui.keyboards import button
from ui.views.listing import fit, hours_text, supply_text


def money(t: Translator, minor: int | None, currency: str) -> str:
    """An amount with its currency as the reader calls it: 3.20 CNY, 3.20 元."""
    if minor is None:
        return "—"
    return f"{format_minor(minor, currency)} {t.currency(currency)}"


def window_text(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    s, e = start.astimezone(zone), end.astimezone(zone)
    tail = e.strftime("%H:%M") if e.date() == s.date() else e.strftime("%Y-%m-%d %H:%M")
    return f"{s:%Y-%m-%d %H:%M}–{tail}"


def tariff_text(t: Translator, price_minor: int, unit: str, currency: str) -> str:
    amount = format_minor(price_minor, currency)
    return t(f"price.per_{unit}", amount=amount, currency=t.currency(currency))


def day_and_time(t: Translator, moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """A moment within the coming week in the reader's words: "today 07:00",
    "tomorrow 07:00", "Wed 07:00" (周三 07:00), never strftime's English names."""
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    days = (local.date() - today).days
    day = (
        t("day.today")
        if days == 0
        else t("day.tomorrow")
        if days == 1
        else t(f"day.{local.weekday()}")
    )
    return f"{day} {local:%H:%M}"


def charger_title(t: Translator, charger: ChargerInfo) -> str:
    return t("find.charger_title", n=charger.position + 1, method=t(f"method.{charger.method}"))


def _day_and_time(
    t: Translator, moment: datetime, zone: ZoneInfo, now: datetime
) -> tuple[str, str]:
    """("today" | "tomorrow" | the weekday, HH:MM) of a moment, as people say it."""
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    days = (local.date() - today).days
    day = (
        t("day.today")
        if days == 0
        else t("day.tomorrow")
        if days == 1
        else t(f"day.{local.weekday()}")
    )
    return day, f"{local:%H:%M}"


def free_text(t: Translator, free_at: datetime | None, zone: ZoneInfo, now: datetime) -> str:
    """ "free now", "next free at 18:00", "next free tomorrow 09:00", or booked up."""
    if free_at is None:
        return t("card.free_none")
    if free_at <= now + timedelta(minutes=1):
        return t("card.free_now")
    day, clock_time = _day_and_time(t, free_at, zone, now)
    if free_at.astimezone(zone).date() == now.astimezone(zone).date():
        return t("card.free_at", time=clock_time)
    return t("card.free_on", day=day, time=clock_time)


def hit_line(
    t: Translator,
    index: int,
    hit: Hit,
    zone: ZoneInfo,
    now: datetime,
    free: dict[int, datetime | None] | None = None,
) -> Html:
    """A shop of /find: its distance and hours now, then each charger with its own
    price and when it is free ("free now", "next free at 18:00")."""
    open_now, opens_at = opening(hit, now, zone)
    if open_now:
        state = t("find.open_now")
    elif opens_at:
        state = t("find.opens_at", when=day_and_time(t, opens_at, zone, now))
    else:
        state = t("find.closed")
    chargers = [
        t(
            "card.find_charger",
            title=charger_title(t, charger),
            price=tariff_text(t, charger.price_minor, charger.price_unit, charger.currency),
            kinds=t.join(t(f"kind.{k}") for k in charger.device_kinds),
            free=free_text(t, (free or {}).get(charger.id), zone, now) if free is not None else "",
        ).rstrip(" ·")
        for charger in hit.chargers
    ]
    return t.html(
        "card.find_line",
        n=index,
        shop=hit.listing.shop_name,
        km=f"{hit.distance_km:.1f}",
        state=state,
        chargers=Html("\n".join(chargers)),
    )


def listing_card(t: Translator, listing: ListingInfo, chargers: list[ChargerInfo]) -> Html:
    parts = []
    for charger in chargers:
        parts.append(
            t(
                "find.card_charger",
                title=charger_title(t, charger),
                kinds=t.join(t(f"kind.{k}") for k in charger.device_kinds),
                models=charger.device_models or t("view.any_model"),
                supply=supply_text(t, charger.supply_kind, charger.supply_model, charger.power_kw),
                hours=hours_text(t, charger.hours),
                price=tariff_text(t, charger.price_minor, charger.price_unit, charger.currency),
            )
        )
    return fit(
        t.html(
            "find.card",
            shop=listing.shop_name,
            address=listing.address or "—",
            phone=listing.contact_phone or "—",
            chargers=Html("\n".join(parts)),
        )
    )


def booking_text(t: Translator, booking: BookingInfo, zone: ZoneInfo) -> Html:
    charger = booking.charger
    estimate = (
        money(t, booking.estimate_minor, booking.currency)
        if booking.estimate_minor is not None
        else t("booking.estimate_kwh")
    )
    return t.html(
        # a finished booking shows what it cost, not the estimate
        "booking.text" if booking.cost_minor is None else "card.booking_text_done",
        cost=money(t, booking.cost_minor, booking.currency),
        id=booking.id,
        shop=booking.shop_name,
        charger=charger_title(t, charger),
        device=t(f"kind.{booking.device_kind}"),
        model=booking.device_model or t("view.any_model"),
        window=window_text(booking.start_at, booking.end_at, zone),
        tariff=tariff_text(t, booking.price_minor, booking.price_unit, booking.currency),
        estimate=estimate,
        status=t(f"booking.status_{booking.status.value}"),
    )


def reason_text(t: Translator, reason: str | None) -> str:
    code = (reason or "").removeprefix("preset:")
    if reason and reason.startswith("preset:") and code in REJECT_PRESETS:
        return t(f"booking_reject.{code}")
    return reason or "—"


# -- the booking flow ------------------------------------------------------------------


def summary(
    t: Translator, quote: Quote, kind: str, model: str, zone: ZoneInfo
) -> tuple[str, InlineKeyboardMarkup]:
    """The booking before Confirm: where, which device, when, at what price."""
    charger = quote.charger
    estimate = (
        money(t, quote.estimate_minor, charger.currency)
        if quote.estimate_minor is not None
        else t("booking.estimate_kwh")
    )
    text = t(
        "booking.summary",
        shop=quote.shop_name,
        device=t(f"kind.{kind}"),
        model=model or t("view.any_model"),
        window=window_text(quote.start, quote.end, zone),
        tariff=tariff_text(t, charger.price_minor, charger.price_unit, charger.currency),
        estimate=estimate,
    )
    row = [
        button(t("btn.confirm"), BookingCb(action=BookingAction.CONFIRM)),
        button(t("btn.cancel"), BookingCb(action=BookingAction.DROP)),
    ]
    return text, InlineKeyboardMarkup(inline_keyboard=[row])


LISTS = {PageOf.MINE: "booking.mine", PageOf.INCOMING: "booking.incoming"}


def bookings_list(
    t: Translator, page: Page[BookingInfo], of: PageOf, zone: ZoneInfo
) -> tuple[Html, InlineKeyboardMarkup | None]:
    """One page of the person's bookings (``mine``) or their chargers' (``incoming``):
    a line each, and a button that opens the booking with what can be done to it."""
    lines = [
        t(
            "booking.line",
            id=booking.id,
            shop=booking.shop_name,
            window=window_text(booking.start_at, booking.end_at, zone),
            status=t(f"booking.status_{booking.status.value}"),
        )
        + (
            ""  # a finished booking: its real cost
            if booking.cost_minor is None
            else t("card.line_cost", cost=money(t, booking.cost_minor, booking.currency))
        )
        for booking in page.items
    ]
    header = t("booking.list_header", title=t(LISTS[of]), page=paging.counter(t, page))
    buttons = [
        button(f"#{booking.id}", BookingCb(action=BookingAction.OPEN, booking_id=booking.id))
        for booking in page.items
    ]
    rows = [buttons[i : i + 5] for i in range(0, len(buttons), 5)]
    markup = paging.with_nav(t, of, page, InlineKeyboardMarkup(inline_keyboard=rows))
    return fit(header + "\n" + "\n".join(lines)), markup


def booking_actions(
    t: Translator, booking: BookingInfo, person: int, now: datetime
) -> InlineKeyboardMarkup | None:
    """Cancel for its user, Accept and Reject for its merchant, while they apply."""
    row = []
    if person == booking.user_id and bookings.cancellable(booking, now):
        row.append(
            button(
                t("btn.cancel_booking"),
                BookingCb(action=BookingAction.CANCEL, booking_id=booking.id),
            )
        )
    if person == booking.merchant_id and bookings.decidable(booking):
        row += [
            button(t("btn.accept"), BookingCb(action=BookingAction.ACCEPT, booking_id=booking.id)),
            button(t("btn.reject"), BookingCb(action=BookingAction.REJECT, booking_id=booking.id)),
        ]
    return InlineKeyboardMarkup(inline_keyboard=[row]) if row else None


def cancel_confirm_buttons(t: Translator, booking_id: int) -> InlineKeyboardMarkup:
    """Cancelling an accepted booking asks first."""
    row = [
        button(
            t("btn.cancel_yes"), BookingCb(action=BookingAction.CANCEL_YES, booking_id=booking_id)
        ),
        button(t("btn.keep_booking"), BookingCb(action=BookingAction.KEEP, booking_id=booking_id)),
    ]
    return InlineKeyboardMarkup(inline_keyboard=[row])


def reminder_buttons(t: Translator, booking: BookingInfo, now: datetime) -> InlineKeyboardMarkup:
    """A reminder's On my way, and Cancel while the booking may still be cancelled."""
    row = [
        button(t("btn.on_my_way"), BookingCb(action=BookingAction.ON_WAY, booking_id=booking.id))
    ]
    if bookings.cancellable(booking, now):
        row.append(
            button(
                t("btn.cancel_booking"),
                BookingCb(action=BookingAction.CANCEL, booking_id=booking.id),
            )
        )
    return InlineKeyboardMarkup(inline_keyboard=[row])


# -- /find -----------------------------------------------------------------------------


def find_page(
    t: Translator,
    page: Page[Hit],
    cb: FindCb,
    zone: ZoneInfo,
    now: datetime,
    free: dict[int, datetime | None] | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """A page of chargers near the person: a line and a button for each, ◀️ / ▶️,
    and the filters (device kind, open now)."""
    first = page.offset + 1
    rows = [
        [
            button(
                f"{i}. {hit.listing.shop_name}",
                FindCb(
                    action=FindAction.CARD,
                    listing_id=hit.listing.id,
                    kind=cb.kind,
                    open_now=cb.open_now,
                    page=page.number,
                ),
            )
        ]
        for i, hit in enumerate(page.items, start=first)
    ]
    nav = []
    if page.number > 0:
        nav.append(
            button(
                t("btn.previous"),
                cb.model_copy(update={"action": FindAction.PAGE, "page": page.number - 1}),
            )
        )
    if page.number < page.pages - 1:
        nav.append(
            button(
                t("btn.next"),
                cb.model_copy(update={"action": FindAction.PAGE, "page": page.number + 1}),
            )
        )
    if nav:
        rows.append(nav)
    kind_label = t(f"kind.{cb.kind}") if cb.kind else t("find.any_device")
    rows.append(
        [
            button(
                t("btn.filter_kind", kind=kind_label),
                cb.model_copy(update={"action": FindAction.KIND, "page": 0}),
            ),
            button(
                t("btn.open_now_on" if cb.open_now else "btn.open_now_off"),
                cb.model_copy(
                    update={"action": FindAction.PAGE, "page": 0, "open_now": not cb.open_now}
                ),
            ),
        ]
    )
    markup = InlineKeyboardMarkup(inline_keyboard=rows)
    if not page.total:
        return t("find.none"), markup
    lines = [hit_line(t, i, hit, zone, now, free) for i, hit in enumerate(page.items, first)]
    header = t("find.header", count=page.total, page=page.number + 1, pages=page.pages)
    return header + "\n\n" + "\n\n".join(lines), markup


def card_buttons(
    t: Translator, listing: ListingInfo, chargers: list[ChargerInfo]
) -> InlineKeyboardMarkup:
    """Book for each charger, and the shop on a map."""
    rows = [
        [button(t("btn.book_charger", n=charger.position + 1), BookCb(charger_id=charger.id))]
        for charger in chargers
    ]
    rows.append([button(t("btn.show_map"), FindCb(action=FindAction.MAP, listing_id=listing.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)
