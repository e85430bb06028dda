"""Texts of the charging flow: the scanned charger, a running session, the order."""

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from hardware_bridge.port import PlugState
from models import Charger, ChargingSession, Listing, Order
from services.charging import Scan, running_bill
from services.errors import DomainError
from ui.callbacks import ChargeCb
from ui.i18n import Html, Translator
from ui.views.booking import charger_title, money, tariff_text, window_text


def clock(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """HH:MM today, else the date too."""
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def refusal(t: Translator, error: DomainError, zone: ZoneInfo, now: datetime) -> str:
    """A domain refusal with its times in the local zone and statuses in words."""
    params = {}
    for name, value in error.params.items():
        if isinstance(value, datetime):
            value = clock(value, zone, now)
        elif name == "status":
            value = t(f"booking.status_{value}")
        params[name] = value
    return t(error.key, **params)


def energy_text(t: Translator, kwh: object, suspect: bool = False) -> str:
    if suspect:
        return t("charge.energy_suspect")
    if kwh is None:
        return t("charge.energy_none")
    return t("charge.energy_kwh", kwh=f"{float(kwh):.3f}")  # type: ignore[arg-type]


def scan_card(t: Translator, scan: Scan, zone: ZoneInfo) -> Html:
    booking, charger = scan.booking, scan.charger
    return t.html(
        "charge.card",
        shop=scan.listing.shop_name or "",
        charger=charger_title(t, charger),
        supply=f"{charger.supply_kind} / {charger.supply_model}",
        device=t(f"kind.{booking.device_kind}"),
        window=window_text(booking.start_at, booking.end_at, zone),
        tariff=tariff_text(t, booking.price_minor, booking.price_unit, booking.currency),
    )


def started_text(
    t: Translator, charging: ChargingSession, charger: Charger, listing: Listing, zone: ZoneInfo
) -> str:
    assert charging.started_at is not None
    now = charging.started_at
    return t(
        "charge.started",
        start=clock(charging.started_at, zone, now),
        end=clock(charging.booking.end_at, zone, now),
        shop=listing.shop_name or "",
        charger=charger_title(t, charger),
    )


def status_text(
    t: Translator,
    charging: ChargingSession,
    charger: Charger,
    listing: Listing,
    plug: PlugState,
    zone: ZoneInfo,
    now: datetime,
) -> str:
    if charging.started_at is None:
        return t("charge.starting_status")
    booking = charging.booking
    so_far = running_bill(charging, now, plug.energy_kwh)
    return t(
        "charge.status",
        start=clock(charging.started_at, zone, now),
        minutes=so_far.minutes,
        shop=listing.shop_name or "",
        charger=charger_title(t, charger),
        energy=energy_text(t, so_far.energy_kwh, so_far.energy_suspect),
        cost=money(so_far.cost_minor, booking.currency),
        tariff=tariff_text(t, booking.price_minor, booking.price_unit, booking.currency),
        end=clock(booking.end_at, zone, now),
    )


def order_text(
    t: Translator,
    order: Order,
    charger: Charger,
    listing: Listing,
    zone: ZoneInfo,
    *,
    parties: bool = False,
) -> str:
    text = t(
        "charge.order",
        id=order.id,
        shop=listing.shop_name or "",
        charger=charger_title(t, charger),
        start=clock(order.started_at, zone, order.ended_at),
        end=clock(order.ended_at, zone, order.ended_at),
        reason=t(f"charge.reason_{order.end_reason}"),
        minutes=order.minutes,
        energy=energy_text(t, order.energy_kwh, order.energy_suspect),
        tariff=tariff_text(t, order.price_minor, order.price_unit, order.currency),
        cost=money(order.cost_minor, order.currency),
    )
    if parties:
        text += "\n" + t(
            "charge.order_parties",
            user=str(order.user_id),
            merchant=str(order.merchant_id),
            booking=order.booking_id,
        )
    if order.charge.power_off_confirmed is False:
        text += "\n" + t("charge.power_off_unconfirmed")
    return text


def _row(t: Translator, ref: int, *buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    """One row of charging buttons: (label key, action) pairs acting on ``ref``."""
    builder = InlineKeyboardBuilder()
    for label, action in buttons:
        builder.button(text=t(label), callback_data=ChargeCb(action=action, ref=ref))
    return builder.as_markup()


def start_button(t: Translator, booking_id: int) -> InlineKeyboardMarkup:
    return _row(t, booking_id, ("btn.start_charging", "start"))


def running_buttons(t: Translator, session_id: int) -> InlineKeyboardMarkup:
    return _row(t, session_id, ("btn.charge_status", "status"), ("btn.stop_charging", "stop"))


def confirm_stop_buttons(t: Translator, session_id: int) -> InlineKeyboardMarkup:
    return _row(t, session_id, ("btn.stop_yes", "stop_yes"), ("btn.keep_charging", "keep"))


def merchant_buttons(t: Translator, session_id: int) -> InlineKeyboardMarkup:
    return _row(t, session_id, ("btn.close_session", "stop"))
