"""Walk-up charging (issue #15): a scan without a booking of a charger that is free
now offers Charge now, for 30 min, 1 h, 2 h or until full, each capped by the next
accepted booking and the opening hours.

``take`` makes the booking under the booking rules (no overlap, the hours, one open
session per charger, the user's cap of open requests) in one transaction that locks
the user's row and then the charger's row (SQLite: BEGIN IMMEDIATE serialises the
whole unit), so of two riders who press at once only one wins; the other is told the
charger was just taken. A charger set to accept walk-ups automatically (the default)
makes the booking ACCEPTED at once; otherwise it is a request its merchant must
answer within ``walkup_response_seconds``. In prepaid mode the booking goes through
``payments.checkout`` like any other.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from models import Booking, BookingStatus, Charger, Listing
from models.base import utcnow
from services import audit, charging, outbox, payments
from services.bookings import (
    MAX_BOOKING,
    OPEN,
    BookingRules,
    bookable,
    busy_intervals,
    check_request_limits,
    estimate_minor,
)
from services.charging import ChargingRules, Scan, active_session
from services.dto import BookingInfo, ChargerInfo, WalkupOffer
from services.errors import InvalidInput, NotAllowed, NotFound
from services.outbox import OutboxKind
from services.tx import Db, lock_rows, read, transaction
from services.windows import open_intervals

# what Charge now offers (minutes); UNTIL_FULL: until the charger reads full
DURATIONS = (30, 60, 120)
UNTIL_FULL = 0
# a charger is offered only when it is free at least this long from now
MIN_FREE = timedelta(minutes=30)
# "until full" ends at the latest after this long (or at the cap before it)
UNTIL_FULL_CAP = timedelta(hours=8)


async def free_until(
    db: Db, charger: ChargerInfo, now: datetime, rules: BookingRules
) -> datetime | None:
    """The end of the free run of the charger from now: the next accepted booking or
    its closing time (at most MAX_BOOKING ahead); None when it is not free for at
    least MIN_FREE (busy, closed, a session open on it)."""
    day = now.astimezone(rules.zone).date()
    open_now = [
        (s, e)
        for s, e in open_intervals(
            charger.hours, day - timedelta(days=1), day + timedelta(days=1), rules.zone
        )
        if s <= now < e
    ]
    if not open_now:
        return None
    end = min(open_now[0][1], now + MAX_BOOKING)
    busy = await busy_intervals(db, charger.id, now, end)
    if any(start <= now for start, _ in busy):
        return None
    end = min([end, *(start for start, _ in busy)])
    if await active_session(db, charger_id=charger.id) is not None:
        return None
    return end if end - now >= MIN_FREE else None


def _end_of(minutes: int, now: datetime, until: datetime) -> datetime:
    if minutes == UNTIL_FULL:
        return min(until, now + UNTIL_FULL_CAP)
    return now + timedelta(minutes=minutes)


async def offer(
    db: Db, charger: Charger, listing: Listing, user_id: int, rules: BookingRules, now: datetime
) -> WalkupOffer | None:
    """In the caller's read: Charge now for a scanned charger, or None when it is not
    free now for MIN_FREE (or cannot be booked: paused, the merchant's own)."""
    if not bookable(listing) or listing.merchant_id == user_id:
        return None
    info = ChargerInfo.of(charger)
    until = await free_until(db, info, now, rules)
    if until is None:
        return None
    minutes = [m for m in DURATIONS if now + timedelta(minutes=m) <= until]
    if charger.meters_power:  # a plug that does not meter power cannot tell "full"
        minutes.append(UNTIL_FULL)
    choices = tuple(
        (m, end, estimate_minor(info.price_minor, info.price_unit, now, end))
        for m in minutes
        for end in (_end_of(m, now, until),)
    )
    return WalkupOffer(info, listing.shop_name or "", until, choices, charger.walkup_auto)


async def take(
    db: Db,
    *,
    user_id: int,
    charger_id: int,
    minutes: int,
    rules: BookingRules,
    now: datetime | None = None,
) -> BookingInfo:
    """Charge now pressed: the walk-up booking (ACCEPTED, or REQUESTED when the
    merchant accepts walk-ups by hand, or UNPAID in prepaid mode), or a refusal that
    says why (taken meanwhile, too long now, a stale or forged choice)."""
    now = now or utcnow()
    if minutes != UNTIL_FULL and minutes not in DURATIONS:
        raise InvalidInput("walkup.err_choice")
    async with transaction(db):
        await check_request_limits(db, user_id, None, None, None, rules, lock=True)
        # serialise walk-ups and decisions on this charger (PostgreSQL row lock)
        await lock_rows(db, select(Charger.id).where(Charger.id == charger_id).with_for_update())
        charger = await db.get(Charger, charger_id, populate_existing=True)
        if charger is None or not charger.active:
            raise NotFound("err.charger_gone")
        listing = await db.get(Listing, charger.listing_id, populate_existing=True)
        if listing is None or not listing.published:
            raise NotFound("err.charger_gone")
        if listing.paused:
            raise InvalidInput("err.listing_paused")
        if listing.merchant_id == user_id:
            raise NotAllowed("err.own_charger")
        info = ChargerInfo.of(charger)
        until = await free_until(db, info, now, rules)
        if until is None:
            raise InvalidInput("walkup.err_taken")
        if minutes == UNTIL_FULL and not charger.meters_power:
            raise InvalidInput("walkup.err_no_meter")
        end = _end_of(minutes, now, until)
        if end > until:
            raise InvalidInput("walkup.err_too_long", until=until)
        await check_request_limits(db, user_id, charger_id, now, end, rules)
        # one walk-up not yet started at a time: each holds a charger for its rider
        if await db.scalar(
            select(Booking.id)
            .where(
                Booking.user_id == user_id,
                Booking.walkup.is_(True),
                Booking.status.in_(OPEN),
            )
            .limit(1)
        ):
            raise InvalidInput("walkup.err_open")
        prepaid = rules.money.prepaid
        if prepaid:
            status = BookingStatus.UNPAID
        else:
            status = BookingStatus.ACCEPTED if charger.walkup_auto else BookingStatus.REQUESTED
        booking = Booking(
            user_id=user_id,
            charger_id=charger.id,
            merchant_id=listing.merchant_id,
            status=status,
            device_kind=charger.device_kinds[0] if charger.device_kinds else "other",
            device_model="",
            start_at=now,
            end_at=end,
            price_minor=charger.price_minor,
            price_unit=charger.price_unit,
            currency=charger.currency,
            estimate_minor=estimate_minor(charger.price_minor, charger.price_unit, now, end),
            respond_by=now + timedelta(seconds=rules.walkup_response_seconds),
            decided_at=now if status == BookingStatus.ACCEPTED else None,
            pay_by=now + timedelta(minutes=rules.money.payment_minutes) if prepaid else None,
            walkup=True,
            until_full=minutes == UNTIL_FULL,
            created_at=now,  # the answer time of one asked after payment counts from here
        )
        db.add(booking)
        await db.flush()
        audit.record(db, "booking", booking.id, "walkup", user_id, None, status.value)
        if prepaid:  # paid from the wallet (then accepted or asked) or an invoice owed
            await payments.checkout(db, booking, rules.money, now)
            await db.refresh(booking)
        elif status == BookingStatus.REQUESTED:
            outbox.enqueue(
                db, listing.merchant_id, OutboxKind.BOOKING_REQUEST, booking_id=booking.id
            )
        made = BookingInfo.of(booking, listing.shop_name or "", info)
    return made


async def scan(
    db: Db,
    *,
    token: str,
    user_id: int,
    rules: ChargingRules,
    booking_rules: BookingRules,
    now: datetime | None = None,
) -> Scan | WalkupOffer:
    """What a scanned QR code means for this user now: their booking (or session) on
    it, else Charge now when the charger is free for MIN_FREE at least, else a refusal
    that says why."""
    now = now or utcnow()
    async with read(db):
        found = await charging.scan_booking(db, token, user_id, rules, now, or_none=True)
        if found is not None:
            return found
        charger, listing = await charging.charger_by_token(db, token)
        offered = await offer(db, charger, listing, user_id, booking_rules, now)
        if offered is not None:
            return offered
        # not free now: why the scan cannot start anything, as without walk-ups
        refused = await charging.scan_booking(db, token, user_id, rules, now)
    assert refused is not None
    return refused


# -- a charger's walk-up and "full" settings (the merchant's, in /listings) -------------

FULL_BELOW_CHOICES = (5, 10, 20, 50)  # W
FULL_MINUTES_CHOICES = (1, 3, 5, 10)


class Setting(StrEnum):
    AUTO = "auto"  # accept walk-ups automatically (on/off)
    BELOW = "below"  # full under this many watts
    MINUTES = "minutes"  # for this many minutes


@dataclass(frozen=True)
class ChargerSettings:
    charger: ChargerInfo
    auto: bool
    full_below_w: int
    full_minutes: int
    meters_power: bool


async def _owned_chargers(db: Db, listing_id: int, merchant_id: int) -> list[Charger]:
    listing = await db.get(Listing, listing_id, populate_existing=True)
    if listing is None:
        raise NotFound("err.listing_not_found")
    if listing.merchant_id != merchant_id:
        raise NotAllowed("err.not_your_listing")
    return list(
        (
            await db.scalars(
                select(Charger)
                .where(Charger.listing_id == listing_id, Charger.active.is_(True))
                .order_by(Charger.position)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


def _settings(charger: Charger) -> ChargerSettings:
    return ChargerSettings(
        ChargerInfo.of(charger),
        charger.walkup_auto,
        charger.full_below_w,
        charger.full_minutes,
        charger.meters_power,
    )


async def settings_of(db: Db, *, listing_id: int, merchant_id: int) -> list[ChargerSettings]:
    """The listing's live chargers (approved) with their settings; its merchant only."""
    async with read(db):
        return [_settings(c) for c in await _owned_chargers(db, listing_id, merchant_id)]


async def change_setting(
    db: Db, *, listing_id: int, charger_id: int, merchant_id: int, what: Setting, value: int
) -> list[ChargerSettings]:
    """One setting of one of the merchant's chargers, from the choices offered (an
    operational setting of the live charger: no review, it changes no public field)."""
    if what == Setting.BELOW and value not in FULL_BELOW_CHOICES:
        raise InvalidInput("walkup.err_setting")
    if what == Setting.MINUTES and value not in FULL_MINUTES_CHOICES:
        raise InvalidInput("walkup.err_setting")
    async with transaction(db):
        chargers = await _owned_chargers(db, listing_id, merchant_id)
        charger = next((c for c in chargers if c.id == charger_id), None)
        if charger is None:
            raise NotFound("err.charger_gone")
        column = {
            Setting.AUTO: "walkup_auto",
            Setting.BELOW: "full_below_w",
            Setting.MINUTES: "full_minutes",
        }[what]
        new: object = bool(value) if what == Setting.AUTO else value
        old = getattr(charger, column)
        if old != new:
            setattr(charger, column, new)
            audit.record(
                db, "charger", charger.id, f"set_{column}", merchant_id, str(old), str(new)
            )
        return [_settings(c) for c in chargers]
