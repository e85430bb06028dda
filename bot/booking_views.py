"""Texts about bookings and search results, shared by handlers and notifications."""

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import Html, Translator
from bot.views import fit, hours_text
from models import Booking, Charger, Listing
from services.bookings import REJECT_PRESETS
from services.money import format_minor
from services.search import Hit, opening


def money(minor: int | None, currency: str) -> str:
    if minor is None:
        return "—"
    return f"{format_minor(minor, currency)} {currency}"


def window_text(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    s, e = start.astimezone(zone), end.astimezone(zone)
    tail = e.strftime("%H:%M") if e.date() == s.date() else e.strftime("%Y-%m-%d %H:%M")
    return f"{s:%Y-%m-%d %H:%M}–{tail}"


def tariff_text(t: Translator, price_minor: int, unit: str, currency: str) -> str:
    amount = format_minor(price_minor, currency)
    return t(f"price.per_{unit}", amount=amount, currency=currency)


def charger_title(t: Translator, charger: Charger) -> str:
    return t("find.charger_title", n=charger.position + 1, method=t(f"method.{charger.method}"))


def hit_line(t: Translator, index: int, hit: Hit, zone: ZoneInfo, now: datetime) -> Html:
    first = hit.chargers[0]
    open_now, opens_at = opening(hit, now, zone)
    if open_now:
        state = t("find.open_now")
    elif opens_at:
        state = t("find.opens_at", when=opens_at.astimezone(zone).strftime("%a %H:%M"))
    else:
        state = t("find.closed")
    kinds = ", ".join(dict.fromkeys(t(f"kind.{k}") for c in hit.chargers for k in c.device_kinds))
    return t.html(
        "find.line",
        n=index,
        shop=hit.listing.shop_name or "",
        km=f"{hit.distance_km:.1f}",
        price=tariff_text(t, first.price_minor, first.price_unit, first.currency),
        method=t(f"method.{first.method}"),
        kinds=kinds,
        state=state,
    )


def listing_card(t: Translator, listing: Listing, chargers: list[Charger]) -> Html:
    parts = []
    for charger in chargers:
        parts.append(
            t(
                "find.card_charger",
                title=charger_title(t, charger),
                kinds=", ".join(t(f"kind.{k}") for k in charger.device_kinds),
                models=charger.device_models or t("view.any_model"),
                supply=f"{charger.supply_kind} / {charger.supply_model}",
                hours=hours_text(t, charger.hours),
                price=tariff_text(t, charger.price_minor, charger.price_unit, charger.currency),
            )
        )
    return fit(
        t.html(
            "find.card",
            shop=listing.shop_name or "",
            address=listing.address or "—",
            phone=listing.contact_phone or "—",
            chargers=Html("\n".join(parts)),
        )
    )


def booking_text(t: Translator, booking: Booking, zone: ZoneInfo, shop: str) -> Html:
    charger = booking.charger
    estimate = (
        money(booking.estimate_minor, booking.currency)
        if booking.estimate_minor is not None
        else t("booking.estimate_kwh")
    )
    return t.html(
        "booking.text",
        id=booking.id,
        shop=shop,
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
