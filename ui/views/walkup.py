"""Walk-up charging (issue #15): the Charge now card of a free charger, what the
rider is told once it is booked, and the Extend buttons of a running session."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.dto import BookingInfo, BookingStatus, WalkupOffer
from services.extend import ExtendOption
from services.walkup import UNTIL_FULL
from ui.callbacks import ExtendCb, WalkupCb
from ui.i18n import Html, Translator
from ui.views.booking import charger_title, money, tariff_text
from ui.views.charging import clock, start_button
from ui.views.listing import supply_text


def walkup_card(
    t: Translator, offer: WalkupOffer, zone: ZoneInfo, now: datetime, response_seconds: int
) -> tuple[Html, InlineKeyboardMarkup]:
    charger = offer.charger
    accept = (
        t("walkup.accept_auto") if offer.auto else t("walkup.accept_ask", seconds=response_seconds)
    )
    text = t.html(
        "walkup.card",
        shop=offer.shop_name,
        charger=charger_title(t, charger),
        supply=supply_text(t, charger.supply_kind, charger.supply_model, charger.power_kw),
        tariff=tariff_text(t, charger.price_minor, charger.price_unit, charger.currency),
        until=clock(offer.free_until, zone, now),
        accept=Html(accept),
    )
    builder = InlineKeyboardBuilder()
    for minutes, end, estimate in offer.choices:
        if minutes == UNTIL_FULL:
            label = t("walkup.until_full", end=clock(end, zone, now))
        elif estimate is None:
            label = t("walkup.choice_kwh", minutes=minutes, end=clock(end, zone, now))
        else:
            price = money(t, estimate, charger.currency)
            label = t("walkup.choice", minutes=minutes, end=clock(end, zone, now), price=price)
        builder.button(
            text=label,
            callback_data=WalkupCb(charger_id=charger.id, minutes=minutes),
        )
    builder.adjust(1)
    if not any(m == UNTIL_FULL for m, _, _ in offer.choices):
        text = Html(text + "\n\n" + t("walkup.no_meter"))
    return text, builder.as_markup()


def taken_text(
    t: Translator, booking: BookingInfo, zone: ZoneInfo, now: datetime
) -> tuple[str, InlineKeyboardMarkup | None]:
    """Charge now pressed: booked (Start), asked (the merchant's deadline), or unpaid."""
    end = clock(booking.end_at, zone, now)
    where = {"shop": booking.shop_name, "charger": charger_title(t, booking.charger), "end": end}
    if booking.status == BookingStatus.ACCEPTED:
        key = "walkup.accepted_full" if booking.until_full else "walkup.accepted"
        return t(key, **where), start_button(t, booking.id)
    if booking.status == BookingStatus.REQUESTED:
        seconds = max(0, int((booking.respond_by - now).total_seconds()))
        deadline = booking.respond_by.astimezone(zone).strftime("%H:%M:%S")
        return t("walkup.waiting", deadline=deadline, seconds=seconds, **where), None
    return t("walkup.unpaid", end=end), None


def extend_buttons(
    t: Translator, charge_id: int, options: Sequence[ExtendOption], zone: ZoneInfo, now: datetime
) -> list[tuple[str, ExtendCb]]:
    """The +30 min / +1 h buttons of a running session (those that fit now)."""
    buttons = []
    for option in options:
        end = clock(option.end, zone, now)
        if option.price_minor is None:
            label = t("walkup.extend_kwh", minutes=option.minutes, end=end)
        else:
            price = money(t, option.price_minor, option.currency)
            label = t("walkup.extend", minutes=option.minutes, end=end, price=price)
        buttons.append((label, ExtendCb(charge_id=charge_id, minutes=option.minutes)))
    return buttons
