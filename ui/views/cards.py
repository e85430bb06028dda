"""Cards as they are now: what each card of a booking or a charging session says
in its current state, and its buttons (none once nothing can be done)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup

from services.dto import (
    BookingInfo,
    BookingStatus,
    ChargeInfo,
    ChargeStatus,
    OrderInfo,
    SessionStatus,
)
from ui import keyboards
from ui.i18n import Html, Translator
from ui.views import charging as charging_views
from ui.views.booking import booking_actions, booking_text, charger_title, money
from ui.views.booking import reason_text as booking_reason_text
from ui.views.charging import clock
from ui.views.listing import when

Card = tuple[str, InlineKeyboardMarkup | None]


def _at(moment: datetime | None, zone: ZoneInfo, now: datetime) -> str:
    return clock(moment, zone, now) if moment else "—"


def request_card(
    t: Translator, booking: BookingInfo, name: str, zone: ZoneInfo, now: datetime
) -> Card:
    """The merchant's request card: Accept / Reject while it waits, then what became
    of it ("✅ Accepted by you at 05:19", "⌛ Expired, nobody answered", …)."""
    body = booking_text(t, booking, zone)
    if booking.status == BookingStatus.REQUESTED:
        text = t(
            "booking.request_merchant",
            name=name,
            body=body,
            until=when(booking.respond_by, zone),
        )
        return text, keyboards.booking_decision(t, booking.id)
    state = t(
        f"card.merchant_{booking.status.value}",
        when=_at(booking.decided_at, zone, now),
        reason=booking_reason_text(t, booking.reason),
    )
    return t("card.request_done", name=name, body=body, state=state), None


def booking_card(
    t: Translator, booking: BookingInfo, person: int, zone: ZoneInfo, now: datetime
) -> Card:
    """The rider's booking card (the request sent, the acceptance, a booking opened
    from /bookings): the booking with its state in words, Cancel while it applies."""
    body = booking_text(t, booking, zone)
    markup = booking_actions(t, booking, person, now)
    if booking.status == BookingStatus.ACCEPTED:
        charger = booking.charger
        supply = f"{charger.supply_kind} / {charger.supply_model}"
        return t("booking.accepted_user", body=body, supply=supply), markup
    state = t(
        f"card.rider_{booking.status.value}",
        when=_at(booking.decided_at, zone, now),
        until=when(booking.respond_by, zone),
        reason=booking_reason_text(t, booking.reason),
    )
    return t("card.booking", body=body, state=state), markup


def finished_line(t: Translator, order: OrderInfo | None) -> str:
    if order is None:
        return t("card.charge_closed")
    return t("card.charge_finished", order=order.id, cost=money(order.cost_minor, order.currency))


def charge_card(
    t: Translator,
    status: ChargeStatus,
    order: OrderInfo | None,
    zone: ZoneInfo,
    now: datetime,
    *,
    merchant: bool = False,
    name: str = "",
) -> Card:
    """A charging card, the rider's (``merchant``: the merchant's): live while the
    session runs, then how it ended ("🧾 Finished: order #12, 3.20 CNY")."""
    charge = status.charge
    booking = charge.booking
    title = t(
        "card.charge_title",
        shop=booking.shop_name,
        charger=charger_title(t, booking.charger),
        booking=booking.id,
    )
    match charge.status:
        case SessionStatus.STARTING:
            return t("charge.switching"), None
        case SessionStatus.CHARGING if merchant:
            return merchant_running(t, charge, name, zone, now), charging_views.merchant_buttons(
                t, charge.id
            )
        case SessionStatus.CHARGING:
            text = charging_views.status_text(t, status, zone, now)
            return text, charging_views.running_buttons(t, charge.id)
        case SessionStatus.STOPPING:
            return t("card.charge_done", title=title, state=t("charge.stopping")), None
        case SessionStatus.COMPLETED:
            state = finished_line(t, order)
            span = t(
                "card.charge_span",
                start=_at(charge.started_at, zone, now),
                end=_at(order.ended_at if order else None, zone, now),
            )
            return t("card.charge_done", title=title, state=f"{span}\n{state}"), None
    # FAILED: nothing was billed; Start again while the booking still allows it
    markup = (
        None
        if merchant or booking.status != BookingStatus.ACCEPTED
        else charging_views.start_button(t, booking.id)
    )
    return t("card.charge_done", title=title, state=t("card.charge_failed")), markup


def merchant_running(
    t: Translator, charge: ChargeInfo, name: str, zone: ZoneInfo, now: datetime
) -> Html:
    assert charge.started_at is not None
    return t.html(
        "charge.merchant_started",
        booking=charge.booking.id,
        shop=charge.booking.shop_name,
        charger=charger_title(t, charge.booking.charger),
        name=name or str(charge.user_id),
        start=clock(charge.started_at, zone, now),
        end=clock(charge.booking.end_at, zone, now),
    )
