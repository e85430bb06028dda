"""Texts built from domain objects, shared by the wizard, the review card and
the merchant's listing view. Everything typed by a person is escaped."""

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from services.dto import ListingStatus, RevisionInfo
from services.hours import Hours, format_hours
from services.listing_draft import ChargerDraft, ListingDraft, supply_preset
from services.listings import ListingOverview, PlugConflict
from services.paging import Page
from ui import keyboards, paging
from ui.callbacks import ChargerSetCb, PageOf, WalkupSetting
from ui.i18n import Html, Translator

DAY_KEYS = tuple(f"day.{d}" for d in range(7))


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def hours_text(t: Translator, hours: Hours | None) -> str:
    if not hours:
        return "—"
    return format_hours(
        hours,
        [t(k) for k in DAY_KEYS],
        t("hours.closed"),
        every_day=t("hours.every_day"),
        day_range=t("hours.range", first="{first}", last="{last}"),
        window_sep=t("hours.window_sep"),
        day_sep=t("hours.day_sep"),
    )


def price_text(t: Translator, charger: ChargerDraft) -> str:
    if charger.price is None:
        return "—"
    return t(
        f"price.per_{charger.price_unit or 'hour'}",
        amount=charger.price,
        currency=t.currency(charger.currency or ""),
    )


def supply_text(
    t: Translator, kind: str | None, model: str | None, power_kw: Decimal | str | None = None
) -> str:
    """The supply device: a preset kind in the reader's language (an English reader
    never sees 智能插座 for a kind picked from the buttons), then its model, and its
    rated power when known (``7 kW``)."""
    code = supply_preset(kind)
    kind_text = t(f"supply.{code}") if code else kind
    supply = f"{kind_text or '—'} / {model or '—'}"
    if not power_kw:
        return supply
    return t("view.with_power", supply=supply, power=f"{Decimal(power_kw).normalize():f}")


def charger_text(t: Translator, index: int, charger: ChargerDraft) -> Html:
    kinds = t.join(t(f"kind.{k}") for k in charger.device_kinds) or "—"
    plug = (
        f"{t('driver.' + charger.plug_driver)} <code>{esc(charger.plug_id or '—')}</code>"
        if charger.plug_driver
        else "—"
    )
    if charger.plug_id:
        plug += " · " + esc(pairing_text(t, charger))
    return t.html(
        "view.charger",
        n=index,
        method=t(f"method.{charger.method}") if charger.method else "—",
        kinds=kinds,
        models=charger.device_models or t("view.any_model"),
        supply=supply_text(t, charger.supply_kind, charger.supply_model, charger.power_kw),
        hours=hours_text(t, charger.hours),
        price=price_text(t, charger),
        plug=Html(plug),
    )


def pairing_text(t: Translator, charger: ChargerDraft) -> str:
    """ "paired ✓ at …" (UTC: a draft has no zone to show it in) or "not bookable yet"."""
    if charger.paired_at is None:
        return t("pairing.view_unpaired")
    at = datetime.fromisoformat(charger.paired_at).astimezone(UTC)
    return t("pairing.view_paired", when=f"{at:%Y-%m-%d %H:%M} UTC")


def listing_text(t: Translator, draft: ListingDraft) -> Html:
    location = (
        f"{draft.latitude:.5f}, {draft.longitude:.5f}"
        if draft.latitude is not None and draft.longitude is not None
        else "—"
    )
    chargers = "\n".join(charger_text(t, i, c) for i, c in enumerate(draft.chargers, start=1))
    return t.html(
        "view.listing",
        shop=draft.shop_name or "—",
        phone=draft.contact_phone or "—",
        area=f"{draft.area_m2:g}" if draft.area_m2 is not None else "—",
        address=draft.address or "—",
        location=location,
        chargers=Html(chargers or "—"),
    )


def when(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


def reason_text(t: Translator, reason: str | None) -> str:
    if not reason:
        return "—"
    if reason.startswith("preset:"):
        return t(f"reject.{reason.removeprefix('preset:')}")
    return reason


def status_line(t: Translator, revision: RevisionInfo, zone: ZoneInfo) -> Html:
    """What became of a submitted version: pending, or who decided what, when."""
    status = revision.status.value
    if revision.decided_at is None or status == "pending":
        return t.html("review.status_pending", when=when(revision.submitted_at, zone))
    return t.html(
        f"review.status_{status}",
        admin=str(revision.decided_by or "—"),
        when=when(revision.decided_at, zone),
        reason=reason_text(t, revision.reason),
    )


# a few lines fit the room a photo caption keeps for the decision line
MAX_CONFLICT_LINES = 3


def plug_conflicts_text(t: Translator, conflicts: Sequence[PlugConflict]) -> Html:
    """The review card's warning: a charger whose plug another listing names."""
    lines = [
        t.html(
            "review.plug_conflict_public" if c.public else "review.plug_conflict_pending",
            n=c.charger,
            plug=f"{t('driver.' + c.plug_driver)} {c.plug_id}",
            listing=c.listing_id,
        )
        for c in conflicts[:MAX_CONFLICT_LINES]
    ]
    if len(conflicts) > MAX_CONFLICT_LINES:
        lines.append(t.html("review.plug_conflict_more", count=len(conflicts) - MAX_CONFLICT_LINES))
    return Html("".join(f"\n{line}" for line in lines))


MESSAGE_LIMIT = 4096


def fit(text: str, limit: int = MESSAGE_LIMIT) -> Html:
    """Cut a rendered text at a line end so that it fits one Telegram message.

    Our templates open and close every tag on one line, so a cut between lines
    keeps the HTML valid. MAX_CHARGERS makes this rare; it must never fail a send.
    """
    if len(text) <= limit:
        return Html(text)
    return Html(text[: limit - 2].rsplit("\n", 1)[0] + "\n…")


# the wizard's shop questions by the draft fields they fill, as its Edit menu names them
SHOP_FIELDS = {
    "contact": "contact_phone",
    "shop_name": "shop_name",
    "photo": "photo_file_id",
    "area": "area_m2",
    "location": "latitude",
}


def missing_text(t: Translator, draft: ListingDraft) -> str:
    """What is still to fill in, named as the Edit menu names it."""
    parts = [
        t(f"field.{step}") for step, attr in SHOP_FIELDS.items() if getattr(draft, attr) is None
    ]
    parts += [t("btn.edit_charger", n=i + 1) for i, c in enumerate(draft.chargers) if c.missing()]
    if not draft.chargers:
        parts.append(t("btn.add_charger"))
    return t.join(parts)


def already_decided(t: Translator, revision: RevisionInfo) -> str:
    """Another admin (or the same, earlier) decided on the version first."""
    return t(
        "review.already_decided",
        status=t(f"status.{revision.status.value}"),
        admin=str(revision.decided_by or "—"),
    )


def pending_list(
    t: Translator, page: Page[RevisionInfo], zone: ZoneInfo
) -> tuple[str, InlineKeyboardMarkup | None]:
    """/pending: one page of what waits for review, a line and a card button each."""
    if not page.items:
        return t("review.none_pending"), None
    lines = [
        t(
            "review.pending_line",
            id=r.id,
            shop=r.shop_name or "—",
            when=when(r.submitted_at, zone),
        )
        for r in page.items
    ]
    header = t("review.pending_header", count=page.total, page=paging.counter(t, page))
    markup = paging.with_nav(
        t, PageOf.PENDING, page, keyboards.show_cards([r.id for r in page.items], t)
    )
    return fit(header + "\n" + "\n".join(lines)), markup


def listing_status(t: Translator, item: ListingOverview) -> str:
    listing = item.listing
    status = t(f"status.{listing.status.value}")
    if listing.published and listing.status != ListingStatus.APPROVED:
        status += " · " + t("status.old_version_public")
    if listing.published and listing.paused:
        status += " · " + t("status.paused")
    return status


def listing_name(item: ListingOverview) -> str:
    return item.latest.shop_name or f"#{item.listing.id}"


def my_listings(
    t: Translator, page: Page[ListingOverview]
) -> tuple[str, InlineKeyboardMarkup | None]:
    """/listings: one page of the merchant's listings, a line and a button each."""
    if not page.items:
        return t("listings.empty"), None
    lines = [
        t("listings.line", id=i.listing.id, name=listing_name(i), status=listing_status(t, i))
        for i in page.items
    ]
    text = fit(t("listings.header", page=paging.counter(t, page)) + "\n" + "\n".join(lines))
    markup = paging.with_nav(
        t,
        PageOf.LISTINGS,
        page,
        keyboards.listing_list(
            t, [(i.listing.id, f"#{i.listing.id} {listing_name(i)}") for i in page.items]
        ),
    )
    return text, markup


def listing_detail(t: Translator, item: ListingOverview) -> tuple[Html, InlineKeyboardMarkup]:
    """One of the merchant's listings: its state, why it was rejected, its latest
    version, and what can be done to it."""
    latest = item.latest
    reason = ""
    if item.listing.status == ListingStatus.REJECTED:
        reason = "\n" + t("listings.reason", reason=reason_text(t, latest.reason))
    text = fit(
        t.html(
            "listings.detail",
            id=item.listing.id,
            status=listing_status(t, item),
            reason=Html(reason),
            body=listing_text(t, latest.draft),
        )
    )
    markup = keyboards.listing_actions(
        t, item.listing.id, published=item.listing.published, paused=item.listing.paused
    )
    if item.listing.published:  # walk-up and "full" settings of its live chargers
        settings = ChargerSetCb(what=WalkupSetting.SHOW, listing_id=item.listing.id)
        markup.inline_keyboard.insert(
            -1, [InlineKeyboardButton(text=t("walkup.btn_settings"), callback_data=settings.pack())]
        )
    return text, markup
