"""Texts of the charging flow: the scanned charger, a running session, the order."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.charging import Scan
from services.dto import ChargeInfo, ChargeStatus, OrderInfo
from services.paging import Page
from ui import paging
from ui.callbacks import ChargeAction, ChargeCb, OnCharge, PageOf, StartCb
from ui.i18n import Html, Translator
from ui.keyboards import button
from ui.views.booking import charger_title, money, tariff_text, window_text
from ui.views.listing import fit, supply_text


def clock(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """HH:MM today, else the date too."""
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


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
        supply=supply_text(t, charger.supply_kind, charger.supply_model),
        device=t(f"kind.{booking.device_kind}"),
        window=window_text(booking.start_at, booking.end_at, zone),
        tariff=tariff_text(t, booking.price_minor, booking.price_unit, booking.currency),
    )


def started_text(t: Translator, charge: ChargeInfo, zone: ZoneInfo) -> str:
    assert charge.started_at is not None
    now = charge.started_at
    if charge.booking.until_full:
        return t(
            "walkup.started_full",
            start=clock(charge.started_at, zone, now),
            end=clock(charge.booking.end_at, zone, now),
        )
    return t(
        "charge.started",
        start=clock(charge.started_at, zone, now),
        end=clock(charge.booking.end_at, zone, now),
        shop=charge.booking.shop_name,
        charger=charger_title(t, charge.booking.charger),
    )


def status_text(t: Translator, status: ChargeStatus, zone: ZoneInfo, now: datetime) -> str:
    charge, so_far = status.charge, status.so_far
    if charge.started_at is None:
        return t("charge.starting_status")
    booking = charge.booking
    return t(
        "charge.status",
        start=clock(charge.started_at, zone, now),
        minutes=so_far.minutes,
        shop=booking.shop_name,
        charger=charger_title(t, booking.charger),
        energy=energy_text(t, so_far.energy_kwh, so_far.energy_suspect),
        cost=money(t, so_far.cost_minor, booking.currency),
        tariff=tariff_text(t, booking.price_minor, booking.price_unit, booking.currency),
        end=clock(booking.end_at, zone, now),
    )


def order_text(
    t: Translator,
    order: OrderInfo,
    zone: ZoneInfo,
    *,
    parties: bool = False,
    audience: str = "platform",
) -> str:
    """The order; ``audience`` (user, merchant, platform) words an unconfirmed power-off
    for who reads it: the rider cannot check the merchant's plug."""
    text = t(
        "charge.order",
        id=order.id,
        shop=order.shop_name,
        charger=charger_title(t, order.charger),
        # a receipt: both with their dates
        start=f"{order.started_at.astimezone(zone):%Y-%m-%d %H:%M}",
        end=f"{order.ended_at.astimezone(zone):%Y-%m-%d %H:%M}",
        reason=t(f"charge.reason_{order.end_reason}"),
        minutes=order.minutes,
        energy=energy_text(t, order.energy_kwh, order.energy_suspect),
        tariff=tariff_text(t, order.price_minor, order.price_unit, order.currency),
        cost=money(t, order.cost_minor, order.currency),
    )
    if parties:
        text += "\n" + t(
            "charge.order_parties",
            user=str(order.user_id),
            merchant=str(order.merchant_id),
            booking=order.booking_id,
        )
    if order.power_off_confirmed is False:
        end = clock(order.ended_at, zone, order.ended_at)
        if audience == "user":
            text += "\n" + t("card.power_off_unconfirmed_rider", end=end)
        elif audience == "merchant":
            text += "\n" + t("card.power_off_unconfirmed_merchant", end=end)
        else:
            text += "\n" + t("charge.power_off_unconfirmed")
    return text


def stopped_text(t: Translator, order: OrderInfo | None, made: bool, zone: ZoneInfo) -> str:
    """The answer to a confirmed Stop: when it ended, or that it had ended before."""
    if order is None or not made:
        return t("charge.already_ended", order=order.id if order else "—")
    end = order.ended_at.astimezone(zone).strftime("%H:%M")
    unconfirmed = order.power_off_confirmed is False
    return t("charge.stopped_unconfirmed" if unconfirmed else "charge.stopped", end=end)


def running_list(
    t: Translator, page: Page[ChargeStatus], zone: ZoneInfo, now: datetime
) -> tuple[str, InlineKeyboardMarkup | None]:
    """/sessions: one page of the sessions charging now, each with its Close button."""
    if not page.items:
        return t("charge.admin_none"), None
    blocks = []
    builder = InlineKeyboardBuilder()
    for status in page.items:
        charge = status.charge
        text = status_text(t, status, zone, now)
        blocks.append(t("charge.admin_line", user=str(charge.user_id), body=Html(text)))
        builder.button(
            text=t("btn.close_session_n", id=charge.id),
            callback_data=ChargeCb(action=ChargeAction.STOP, charge_id=charge.id),
        )
    builder.adjust(2)
    header = t("charge.admin_header", count=page.total, page=paging.counter(t, page))
    markup = paging.with_nav(t, PageOf.SESSIONS, page, builder.as_markup())
    return fit(header + "\n\n" + "\n\n".join(blocks)), markup


def start_button(t: Translator, booking_id: int) -> InlineKeyboardMarkup:
    start = button(t("btn.start_charging"), StartCb(booking_id=booking_id))
    return InlineKeyboardMarkup(inline_keyboard=[[start]])


def _row(t: Translator, charge_id: int, *buttons: tuple[str, OnCharge]) -> InlineKeyboardMarkup:
    """One row of buttons acting on a charging session: (label key, action) pairs
    (built directly, ``button``: these go out on the Start and Stop legs)."""
    row = [
        button(t(label), ChargeCb(action=action, charge_id=charge_id)) for label, action in buttons
    ]
    return InlineKeyboardMarkup(inline_keyboard=[row])


def running_buttons(
    t: Translator, charge_id: int, extend: Sequence[tuple[str, CallbackData]] = ()
) -> InlineKeyboardMarkup:
    """Status and Stop; ``extend``: the Extend buttons that fit now, a row each."""
    markup = _row(
        t,
        charge_id,
        ("btn.charge_status", ChargeAction.STATUS),
        ("btn.stop_charging", ChargeAction.STOP),
    )
    for label, data in extend:
        markup.inline_keyboard.append([button(label, data)])
    return markup


def confirm_stop_buttons(t: Translator, charge_id: int) -> InlineKeyboardMarkup:
    return _row(
        t,
        charge_id,
        ("btn.stop_yes", ChargeAction.STOP_YES),
        ("btn.keep_charging", ChargeAction.KEEP),
    )


def merchant_buttons(t: Translator, charge_id: int) -> InlineKeyboardMarkup:
    return _row(t, charge_id, ("btn.close_session", ChargeAction.STOP))
