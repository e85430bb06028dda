"""Cards as they are now: what each card of a booking or a charging session says
in its current state, and its buttons (none once nothing can be done)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.dto import (
    BookingInfo,
    BookingStatus,
    ChargeInfo,
    ChargeStatus,
    OrderInfo,
    SessionStatus,
)
from ui import keyboards
from ui.callbacks import FindAction, FindCb, WizardAction, WizardCb
from ui.i18n import Html, Translator
from ui.views import charging as charging_views
from ui.views.booking import booking_actions, booking_text, charger_title, money, tariff_text
from ui.views.booking import reason_text as booking_reason_text
from ui.views.charging import clock
from ui.views.listing import supply_text, when

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
        supply = supply_text(t, charger.supply_kind, charger.supply_model, charger.power_kw)
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
    return t(
        "card.charge_finished", order=order.id, cost=money(t, order.cost_minor, order.currency)
    )


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
            text = merchant_running(t, charge, name, zone, now) + "\n\n" + live_line(t, status, now)
            return text, charging_views.merchant_buttons(t, charge.id)
        case SessionStatus.CHARGING:
            return live_text(t, status, zone, now), charging_views.running_buttons(t, charge.id)
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


def welcome_buttons(t: Translator) -> InlineKeyboardMarkup:
    """/start's two ways in: find a charger, or list one's own."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn.welcome_find"), callback_data=FindCb(action=FindAction.RESTART))
    builder.button(text=t("btn.welcome_list"), callback_data=WizardCb(action=WizardAction.START))
    builder.adjust(1)
    return builder.as_markup()


BAR = 10


def window_bar(start: datetime, end: datetime, now: datetime) -> str:
    """How much of the booked window has gone: ▓▓▓░░░░░░░."""
    total = max(1.0, (end - start).total_seconds())
    gone = min(BAR, max(0, round(BAR * (now - start).total_seconds() / total)))
    return "▓" * gone + "░" * (BAR - gone)


def _live(t: Translator, status: ChargeStatus, now: datetime) -> dict[str, str]:
    booking, so_far = status.charge.booking, status.so_far
    power = (
        t("card.power_w", watts=f"{status.power_w:.0f}")
        if status.power_w is not None
        else t("card.power_none")
    )
    left = max(0, int((booking.end_at - now).total_seconds() // 60))
    return {
        "power": power,
        "energy": charging_views.energy_text(t, so_far.energy_kwh, so_far.energy_suspect),
        "cost": money(t, so_far.cost_minor, booking.currency),
        "left": str(left),
    }


def live_text(t: Translator, status: ChargeStatus, zone: ZoneInfo, now: datetime) -> str:
    """The rider's charging card while it runs: power now, energy, cost so far, time
    left and a bar of the window (it edits itself every CHARGING_REFRESH_SECONDS)."""
    charge = status.charge
    booking = charge.booking
    if charge.started_at is None:
        return t("charge.starting_status")
    return t(
        "card.live",
        start=clock(charge.started_at, zone, now),
        minutes=status.so_far.minutes,
        shop=booking.shop_name,
        charger=charger_title(t, booking.charger),
        tariff=tariff_text(t, booking.price_minor, booking.price_unit, booking.currency),
        end=clock(booking.end_at, zone, now),
        bar=window_bar(charge.started_at, booking.end_at, now),
        **_live(t, status, now),
    )


def live_line(t: Translator, status: ChargeStatus, now: datetime) -> str:
    """The merchant's one-line live summary of a running session."""
    return t("card.live_line", **_live(t, status, now))


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
