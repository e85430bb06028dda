"""Bookings: request → the merchant accepts or rejects → (charging, a later
release). Also expiry when nobody answers, and the user's cancellation.

Accepting checks for an overlapping accepted booking and changes the state in
one transaction that first locks the charger's row (on SQLite the whole unit of
work holds the write lock), so two accepts pressed at once cannot both win.
"""

import functools
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, bindparam, exists, func, literal, null, or_, select, update
from sqlalchemy.orm import joinedload

from models import Booking, BookingStatus, Charger, ChargingSession, Listing, Order, User
from models.base import utcnow
from models.charging import ACTIVE_SESSION
from models.enums import BOOKING_TAKEN
from services import audit, cards, outbox, payments
from services.cards import Subject
from services.deadlines import NUDGE_BEFORE, answer_by
from services.dto import (
    LISTINGS_WITH_CHARGERS,
    BookingInfo,
    ChargerInfo,
    ListingInfo,
    listing_and_charger,
)
from services.errors import InvalidInput, NotAllowed, NotFound
from services.money import PAY_AT_SHOP, MoneyRules
from services.outbox import OutboxKind
from services.paging import Page, page_of
from services.returning import move_returning, take_row
from services.text import clean_reason
from services.tx import Db, lock_rows, read, transaction
from services.windows import Interval, fits_hours, free_windows

MAX_BOOKING = timedelta(hours=24)
MIN_BOOKING = timedelta(minutes=15)
REJECT_PRESETS = ("no_spot", "closing_early", "no_power")
# open: the user's (unpaid, requested or accepted) booking still stands
OPEN = (BookingStatus.UNPAID, BookingStatus.REQUESTED, BookingStatus.ACCEPTED)
# waiting: counted against the user's cap of open requests
WAITING = (BookingStatus.UNPAID, BookingStatus.REQUESTED)


@dataclass(frozen=True)
class BookingRules:
    zone: ZoneInfo
    response_minutes: int = 15
    # requests of one user waiting for a merchant's answer at once (None: no limit)
    max_open_requests: int | None = None
    # how far ahead a window may start (BOOKING_HORIZON_DAYS)
    horizon_days: int = 30
    # payments: prepaid (a provider is set: a booking is UNPAID until paid) or pay at the shop
    money: MoneyRules = PAY_AT_SHOP
    # a walk-up that the merchant accepts by hand must be answered this fast
    walkup_response_seconds: int = 120


def estimate_minor(price_minor: int, unit: str, start: datetime, end: datetime) -> int | None:
    """Per hour: price × duration, to the minor unit, half up. Per kWh: unknown."""
    if unit != "hour":
        return None
    minutes = Decimal(int((end - start).total_seconds() // 60))
    return int((Decimal(price_minor) * minutes / 60).quantize(Decimal(1), ROUND_HALF_UP))


async def bookable_charger(db: Db, charger_id: int) -> ChargerInfo:
    """A charger of a public, unpaused listing; else a refusal that says why."""
    return (await _bookable(db, charger_id))[0]


# The statements every booking step runs, built once with their parameters named:
# building a statement and its cache key costs more than SQLite takes to run it
# (docs/benchmarks.md, fifth round).
_BUSY = select(Booking.start_at, Booking.end_at).where(
    Booking.charger_id == bindparam("charger_id"),
    Booking.status.in_(BOOKING_TAKEN),
    Booking.start_at < bindparam("end"),
    Booking.end_at > bindparam("start"),
)
# how many of the user's requests wait for an answer or a payment
_WAITING = (
    select(func.count())
    .select_from(Booking)
    .where(Booking.user_id == bindparam("user_id"), Booking.status.in_(WAITING))
    .scalar_subquery()
)
# the user's own open booking of the charger that the window overlaps
_MINE = (
    select(Booking.id)
    .where(
        Booking.user_id == bindparam("user_id"),
        Booking.charger_id == bindparam("charger_id"),
        Booking.status.in_(OPEN),
        Booking.start_at < bindparam("end"),
        Booking.end_at > bindparam("start"),
    )
    .limit(1)
    .scalar_subquery()
)


@functools.cache
def _bookable_statement(waiting: bool, window: bool) -> Select[Any]:
    """The charger with its shop's flags and name, and the step's other questions as
    columns of the same statement: how many of the user's requests wait (``waiting``),
    and for a window, the user's own open booking of the charger it overlaps and
    whether another booking holds it (``window``). One statement per booking step."""
    asked = [
        _WAITING if waiting else null(),
        _MINE if window else null(),
        exists(_BUSY) if window else null(),
    ]
    return (
        select(
            Charger,
            Listing.published,
            Listing.paused,
            Listing.merchant_id,
            Listing.shop_name,
            *asked,
        )
        .join(Listing, Listing.id == Charger.listing_id)
        .where(Charger.id == bindparam("charger_id"))
        .execution_options(populate_existing=True)
    )


# a listing's card: its columns beside each active charger's
_LISTING_CARD = LISTINGS_WITH_CHARGERS.where(
    Listing.id == bindparam("listing_id"), Charger.active.is_(True)
).order_by(Charger.position)
# check_request_limits' two questions in one statement, by which of them apply
_LIMITS = {
    (True, True): select(_WAITING, _MINE),
    (True, False): select(_WAITING, null()),
    (False, True): select(literal(0), _MINE),
}
_LOCK_USER = select(User.id).where(User.id == bindparam("user_id")).with_for_update()
_LOCK_CHARGER = select(Charger.id).where(Charger.id == bindparam("charger_id")).with_for_update()
# acceptable(): the charger's taken windows and the user's own open requests for it
_TAKEN_OR_MINE = select(Booking.start_at, Booking.end_at).where(
    Booking.charger_id == bindparam("charger_id"),
    Booking.start_at < bindparam("end"),
    Booking.end_at > bindparam("start"),
    or_(
        Booking.status.in_(BOOKING_TAKEN),
        and_(Booking.user_id == bindparam("user_id"), Booking.status.in_(OPEN)),
    ),
)


@dataclass(frozen=True)
class _Shop:
    merchant_id: int
    name: str


@dataclass(frozen=True)
class _Asked:
    """What ``_ask`` read: the charger and its shop's row (None: no such charger), and
    the answers to the questions asked with it (None where not asked)."""

    row: Any
    waiting: int | None
    mine: int | None
    busy: bool | None

    def bookable(self) -> tuple[ChargerInfo, _Shop]:
        """The charger and its shop, if it may be booked; else a refusal that says why."""
        if self.row is None:
            raise NotFound("err.charger_gone")
        charger, published, paused, merchant_id, shop_name = self.row
        if not charger.active or not published:
            raise NotFound("err.charger_gone")
        if paused:
            raise InvalidInput("err.listing_paused")
        if charger.paired_at is None:  # no plug yet: nothing could switch the power
            raise InvalidInput("pairing.err_not_bookable")
        return ChargerInfo.of(charger), _Shop(merchant_id, shop_name or "")

    def at_cap(self, rules: BookingRules) -> bool:
        """The user has as many requests waiting as the rules allow (never, uncapped)."""
        cap = rules.max_open_requests
        return cap is not None and self.waiting is not None and self.waiting >= cap

    def check_limits(self, rules: BookingRules) -> None:
        """``check_request_limits``' refusals, from the answers read."""
        if self.at_cap(rules):
            raise NotAllowed("err.too_many_requests", max=rules.max_open_requests)
        if self.mine is not None:
            raise InvalidInput("err.booking_repeat", id=self.mine)


async def _ask(
    db: Db,
    charger_id: int,
    *,
    user_id: int | None = None,
    rules: BookingRules | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> _Asked:
    """A booking step's questions in one statement (the listing's row is read for its
    flags and name only): the charger, and with ``user_id`` and ``rules`` the user's
    requests waiting (when the rules cap them), with ``window`` too their own booking
    it repeats and whether it is taken."""
    waiting = user_id is not None and rules is not None and rules.max_open_requests is not None
    params: dict[str, Any] = {"charger_id": charger_id, "user_id": user_id}
    if window is not None:
        params |= {"start": window[0], "end": window[1]}
    async with read(db):
        statement = _bookable_statement(waiting, window is not None)
        row = (await db.execute(statement, params)).one_or_none()
    if row is None:
        return _Asked(None, None, None, None)
    return _Asked(row[:5], row[5], row[6], row[7])


async def _bookable(db: Db, charger_id: int) -> tuple[ChargerInfo, _Shop]:
    """``bookable_charger`` and its shop, in one statement."""
    return (await _ask(db, charger_id)).bookable()


def bookable(listing: Listing | ListingInfo | None) -> bool:
    """People may find a listing and book its chargers: published and not paused."""
    return listing is not None and listing.published and not listing.paused


async def public_place(db: Db, listing_id: int) -> ListingInfo:
    """Where a listing people may book is (Show on map); else the same refusal as
    ``bookable_listing``."""
    async with read(db):
        row = (
            await db.execute(select(*ListingInfo.COLUMNS).where(Listing.id == listing_id))
        ).one_or_none()
    listing = ListingInfo.of_row(row) if row is not None else None
    if listing is None or not bookable(listing):
        raise NotFound("err.listing_unavailable")
    return listing


async def bookable_listing(db: Db, listing_id: int) -> tuple[ListingInfo, list[ChargerInfo]]:
    """A listing's card with its active chargers, if they may be booked now; else a
    refusal (paused, under its first review, withdrawn while the person looked).

    One statement: the listing's columns beside each active charger's (a listing
    with none has no row, and is refused as one that cannot be booked)."""
    async with read(db):
        rows = (await db.execute(_LISTING_CARD, {"listing_id": listing_id})).all()
    pairs = [listing_and_charger(row) for row in rows]
    if not pairs or not bookable(pairs[0][0]):
        raise NotFound("err.listing_unavailable")
    return pairs[0][0], [charger for _listing, charger in pairs]


async def busy_intervals(db: Db, charger_id: int, start: datetime, end: datetime) -> list[Interval]:
    rows = await db.execute(_BUSY, {"charger_id": charger_id, "start": start, "end": end})
    return [(s, e) for s, e in rows.all()]


async def check_window(
    db: Db,
    charger: ChargerInfo,
    start: datetime,
    end: datetime,
    now: datetime,
    rules: BookingRules,
    busy: bool | None = None,
) -> None:
    """Refuse a window that is past, empty, too long, too far ahead, outside the
    hours, or taken (``busy``: whether it is, when already read).

    A refusal carries the free windows of that day, so the user can pick one.
    """
    if end <= start:
        raise InvalidInput("err.window_order")
    if start < now - timedelta(minutes=1):
        raise InvalidInput("err.window_past")
    if end - start < MIN_BOOKING or end - start > MAX_BOOKING:
        raise InvalidInput("err.window_length")
    if start > now + timedelta(days=rules.horizon_days):
        raise InvalidInput("err.window_far", days=rules.horizon_days)
    day = start.astimezone(rules.zone).date()
    if not fits_hours(charger.hours, start, end, rules.zone):
        raise InvalidInput("err.window_hours", **await _free(db, charger, day, now, rules))
    if busy is None:
        busy = bool(await busy_intervals(db, charger.id, start, end))
    if busy:
        raise InvalidInput("err.window_taken", **await _free(db, charger, day, now, rules))


async def _free(
    db: Db, charger: ChargerInfo, day: date, now: datetime, rules: BookingRules
) -> dict[str, object]:
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=rules.zone)
    busy = await busy_intervals(
        db, charger.id, day_start - timedelta(days=1), day_start + timedelta(days=2)
    )
    windows = free_windows(charger.hours, day, busy, rules.zone, now)
    return {"free": [(s.isoformat(), e.isoformat()) for s, e in windows]}


async def request(
    db: Db,
    *,
    user_id: int,
    charger_id: int,
    device_kind: str,
    device_model: str,
    start: datetime,
    end: datetime,
    rules: BookingRules,
    now: datetime | None = None,
) -> BookingInfo:
    now = now or utcnow()
    async with transaction(db):
        # the user's row locked first (PostgreSQL), so a double press cannot pass the
        # cap twice; then every question of the request in one statement
        await lock_rows(db, _LOCK_USER, {"user_id": user_id})
        asked = await _ask(db, charger_id, user_id=user_id, rules=rules, window=(start, end))
        asked.check_limits(rules)
        charger, listing = asked.bookable()
        if device_kind not in charger.device_kinds:
            raise InvalidInput("err.device_kind")
        await check_window(db, charger, start, end, now, rules, busy=asked.busy)
        if listing.merchant_id == user_id:
            raise NotAllowed("err.own_charger")
        respond_by = answer_by(start, now, rules.response_minutes)
        prepaid = rules.money.prepaid
        booking = Booking(
            user_id=user_id,
            charger_id=charger.id,
            merchant_id=listing.merchant_id,
            status=BookingStatus.UNPAID if prepaid else BookingStatus.REQUESTED,
            device_kind=device_kind,
            device_model=device_model[:128],
            start_at=start,
            end_at=end,
            price_minor=charger.price_minor,
            price_unit=charger.price_unit,
            currency=charger.currency,
            estimate_minor=estimate_minor(charger.price_minor, charger.price_unit, start, end),
            respond_by=respond_by,
            pay_by=now + timedelta(minutes=rules.money.payment_minutes) if prepaid else None,
        )
        db.add(booking)
        await db.flush()
        audit.record(db, "booking", booking.id, "request", user_id, None, booking.status.value)
        if prepaid:  # paid from the wallet (the merchant asked) or an invoice owed
            await payments.checkout(db, booking, rules.money, now)
        else:
            outbox.enqueue(
                db, listing.merchant_id, OutboxKind.BOOKING_REQUEST, booking_id=booking.id
            )
        made = BookingInfo.of(booking, listing.name, charger)
    return made


async def check_request_limits(
    db: Db,
    user_id: int,
    charger_id: int | None,
    start: datetime | None,
    end: datetime | None,
    rules: BookingRules,
    *,
    lock: bool = False,
) -> None:
    """Refuse a request past the user's cap of open requests, or one that repeats
    (or overlaps) their own open booking of the same charger.

    ``lock`` (inside the request's transaction): the user's row is locked first
    (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises the whole unit), so that a
    double press cannot pass the count twice. (A booking's own steps ask these
    questions with the charger's read, ``_ask``; a walk-up asks them here.)
    """
    if lock:
        await lock_rows(db, _LOCK_USER, {"user_id": user_id})
    capped = rules.max_open_requests is not None
    repeats = charger_id is not None and start is not None and end is not None
    if not capped and not repeats:
        return
    # both questions in one statement
    window = {"charger_id": charger_id, "start": start, "end": end} if repeats else {}
    waiting, mine = (
        await db.execute(_LIMITS[capped, repeats], {"user_id": user_id, **window})
    ).one()
    _Asked(None, waiting if capped else None, mine, None).check_limits(rules)


async def _locked(db: Db, booking_id: int) -> Booking:
    booking = await db.get(Booking, booking_id, populate_existing=True, options=_WITH_SHOP)
    if booking is None:
        raise NotFound("err.booking_not_found")
    # serialise deciders of one charger: PostgreSQL row lock (SQLite: BEGIN IMMEDIATE)
    await lock_rows(db, _LOCK_CHARGER, {"charger_id": booking.charger_id})
    return booking


async def _move(
    db: Db,
    booking: Booking,
    to: BookingStatus,
    allowed: tuple[BookingStatus, ...],
    actor: int | None,
    reason: str | None = None,
) -> bool:
    """A conditional state change: False when the booking moved on meanwhile.

    The UPDATE returns the row as it wrote it, and ``booking`` takes those values
    (no second read of the row, nor of its charger)."""
    row = await move_returning(
        db, Booking, booking.id, allowed, {"status": to, "decided_at": utcnow(), "reason": reason}
    )
    if row is None:
        return False
    audit.record(db, "booking", booking.id, to.value, actor, booking.status.value, to.value, reason)
    take_row(booking, row)
    return True


async def accept(
    db: Db, *, booking_id: int, merchant_id: int, now: datetime | None = None
) -> BookingInfo:
    now = now or utcnow()
    async with transaction(db):
        booking = await _locked(db, booking_id)
        if booking.merchant_id != merchant_id:
            raise NotAllowed("err.not_your_booking")
        if booking.status != BookingStatus.REQUESTED:
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        if booking.respond_by <= now:
            raise InvalidInput("err.booking_decided", status=BookingStatus.EXPIRED.value)
        if await busy_intervals(db, booking.charger_id, booking.start_at, booking.end_at):
            raise InvalidInput("err.booking_overlap")
        if not await _move(
            db, booking, BookingStatus.ACCEPTED, (BookingStatus.REQUESTED,), merchant_id
        ):
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        outbox.enqueue(db, booking.user_id, OutboxKind.BOOKING_ACCEPTED, booking_id=booking.id)
        await cards.refresh(db, Subject.BOOKING, booking.id)
        return await _info(db, booking)


async def reject(db: Db, *, booking_id: int, merchant_id: int, reason: str) -> BookingInfo:
    reason = clean_reason(reason)
    async with transaction(db):
        booking = await _locked(db, booking_id)
        if booking.merchant_id != merchant_id:
            raise NotAllowed("err.not_your_booking")
        if not await _move(
            db,
            booking,
            BookingStatus.REJECTED,
            (BookingStatus.REQUESTED,),
            merchant_id,
            reason,
        ):
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        await payments.release_hold(db, booking, "rejected", merchant_id)
        outbox.enqueue(db, booking.user_id, OutboxKind.BOOKING_REJECTED, booking_id=booking.id)
        await cards.refresh(db, Subject.BOOKING, booking.id)
        return await _info(db, booking)


async def cancel(
    db: Db, *, booking_id: int, user_id: int, now: datetime | None = None
) -> BookingInfo:
    now = now or utcnow()
    async with transaction(db):
        booking = await _locked(db, booking_id)
        if booking.user_id != user_id:
            raise NotAllowed("err.not_your_booking")
        # a walk-up starts at once: it may be cancelled until charging starts (below)
        started = booking.status == BookingStatus.ACCEPTED and booking.start_at <= now
        if started and not booking.walkup:
            raise InvalidInput("err.booking_started")
        if await db.scalar(  # switched on in the grace before the window
            select(ChargingSession.id).where(
                ChargingSession.booking_id == booking.id,
                ChargingSession.status.in_(ACTIVE_SESSION),
            )
        ):
            raise InvalidInput("err.booking_started")
        await db.refresh(booking)  # as it is now that deciders queue behind us
        was_unpaid = booking.status == BookingStatus.UNPAID
        if not await _move(db, booking, BookingStatus.CANCELLED, OPEN, user_id):
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        await payments.release_hold(db, booking, "cancelled", user_id)
        if not was_unpaid:  # the merchant never heard of an unpaid booking
            outbox.enqueue(
                db, booking.merchant_id, OutboxKind.BOOKING_CANCELLED, booking_id=booking.id
            )
        await cards.refresh(db, Subject.BOOKING, booking.id)
        return await _info(db, booking)


async def expire_due(db: Db, now: datetime | None = None) -> int:
    """Expire requests nobody answered in time; each exactly once, also after
    downtime (the due time is in the row, not in a timer in memory)."""
    now = now or utcnow()
    due = (
        await db.scalars(
            select(Booking.id)
            .where(Booking.status == BookingStatus.REQUESTED, Booking.respond_by <= now)
            .limit(100)
        )
    ).all()
    expired = 0
    for booking_id in due:
        async with transaction(db):
            booking = await db.get(Booking, booking_id, populate_existing=True)
            if booking is None or not await _move(
                db, booking, BookingStatus.EXPIRED, (BookingStatus.REQUESTED,), None
            ):
                continue
            await payments.release_hold(db, booking, "expired")
            outbox.enqueue(db, booking.user_id, OutboxKind.BOOKING_EXPIRED, booking_id=booking.id)
            outbox.enqueue(
                db, booking.merchant_id, OutboxKind.BOOKING_EXPIRED_MERCHANT, booking_id=booking.id
            )
            await cards.refresh(db, Subject.BOOKING, booking.id)
            expired += 1
    return expired


# the rider's reminder before the window (and whether the booking was accepted early
# enough for one to make sense)
REMIND_BEFORE = timedelta(minutes=30)
NUDGED, REMINDED_BEFORE, REMINDED_AT_START = 1, 2, 3


async def remind_due(db: Db, now: datetime | None = None) -> int:
    """Nudge merchants whose answer is due within ``NUDGE_BEFORE``; remind riders
    ``REMIND_BEFORE`` their window and at its start. Each once (a conditional UPDATE
    of ``reminded``), also after downtime, and only while it still makes sense (a
    reminder that would come too late is not sent)."""
    now = now or utcnow()
    jobs = (
        (
            NUDGED,
            (
                Booking.status == BookingStatus.REQUESTED,
                Booking.reminded < NUDGED,
                Booking.respond_by <= now + NUDGE_BEFORE,
                Booking.respond_by > now,
            ),
        ),
        (
            REMINDED_BEFORE,
            (
                Booking.status == BookingStatus.ACCEPTED,
                Booking.reminded < REMINDED_BEFORE,
                Booking.start_at <= now + REMIND_BEFORE,
                Booking.start_at > now + REMIND_BEFORE / 2,
            ),
        ),
        (
            REMINDED_AT_START,
            (
                Booking.status == BookingStatus.ACCEPTED,
                Booking.reminded < REMINDED_AT_START,
                Booking.start_at <= now,
                Booking.start_at > now - timedelta(minutes=10),
            ),
        ),
    )
    sent = 0
    for stage, conditions in jobs:
        due = (await db.scalars(select(Booking.id).where(*conditions).limit(100))).all()
        for booking_id in due:
            async with transaction(db):
                changed = await db.execute(
                    update(Booking)
                    .where(Booking.id == booking_id, *conditions)
                    .values(reminded=stage)
                )
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                booking = await db.get(Booking, booking_id, populate_existing=True)
                assert booking is not None
                # accepted within the half hour (or after the start): the acceptance
                # itself was the reminder; the stage is passed without a message
                decided = booking.decided_at or booking.created_at
                if stage == REMINDED_BEFORE and decided > booking.start_at - REMIND_BEFORE:
                    continue
                if stage == REMINDED_AT_START and decided >= booking.start_at:
                    continue
                if stage == NUDGED:
                    outbox.enqueue(
                        db, booking.merchant_id, OutboxKind.BOOKING_NUDGE, booking_id=booking_id
                    )
                else:
                    at_start = stage == REMINDED_AT_START
                    outbox.enqueue(
                        db,
                        booking.user_id,
                        OutboxKind.BOOKING_REMINDER,
                        booking_id=booking_id,
                        stage="start" if at_start else "before",
                    )
                sent += 1
    return sent


async def on_the_way(db: Db, *, booking_id: int, user_id: int) -> BookingInfo:
    """The rider says they are coming: the merchant is told (once per press that
    finds the booking still accepted)."""
    async with transaction(db):
        booking = await get(db, booking_id)
        if booking.user_id != user_id:
            raise NotAllowed("err.not_your_booking")
        if booking.status != BookingStatus.ACCEPTED:
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        audit.record(db, "booking", booking.id, "on_the_way", user_id, None, None)
        outbox.enqueue(
            db, booking.merchant_id, OutboxKind.BOOKING_ON_THE_WAY, booking_id=booking.id
        )
        return await _info(db, booking)


async def get(db: Db, booking_id: int) -> Booking:
    booking = await db.get(Booking, booking_id, populate_existing=True, options=_WITH_SHOP)
    if booking is None:
        raise NotFound("err.booking_not_found")
    return booking


async def page_of_user(db: Db, user_id: int, number: int, size: int) -> Page[BookingInfo]:
    """One page of the user's bookings, the latest window first."""
    statement = (
        select(Booking)
        .where(Booking.user_id == user_id)
        .order_by(Booking.start_at.desc(), Booking.id.desc())
    )
    return await _page(db, statement, number, size)


async def page_of_merchant(db: Db, merchant_id: int, number: int, size: int) -> Page[BookingInfo]:
    """One page of the bookings of the merchant's chargers, the latest window first."""
    statement = (
        select(Booking)
        .where(Booking.merchant_id == merchant_id)
        .order_by(Booking.start_at.desc(), Booking.id.desc())
    )
    return await _page(db, statement, number, size)


async def _page(db: Db, statement: Select[Booking], number: int, size: int) -> Page[BookingInfo]:
    async with read(db):
        page: Page[Booking] = await page_of(db, statement.options(*_WITH_SHOP), number, size)
        items = await _with_costs(db, [await _info(db, booking) for booking in page.items])
    return Page(items, page.total, page.number, page.pages, page.size)


async def _with_costs(db: Db, items: list[BookingInfo]) -> list[BookingInfo]:
    """Finished bookings with their orders' real cost (one query), not the estimate."""
    done = [b.id for b in items if b.status == BookingStatus.COMPLETED]
    if not done:
        return items
    rows = await db.execute(
        select(Order.booking_id, Order.cost_minor).where(Order.booking_id.in_(done))
    )
    costs = {booking_id: cost for booking_id, cost in rows.all()}
    return [replace(b, cost_minor=costs.get(b.id)) for b in items]


# -- for people: what handlers and ui show (plain values) ------------------------------


async def info(db: Db, booking_id: int) -> BookingInfo:
    async with read(db):
        (booking,) = await _with_costs(db, [await _info(db, await get(db, booking_id))])
        return booking


# a booking's charger and its listing in the same query: what ``_info`` shows then
# costs no query of its own (``get`` finds the listing in the session)
_WITH_SHOP = (joinedload(Booking.charger).joinedload(Charger.listing),)


async def _info(db: Db, booking: Booking) -> BookingInfo:
    listing = await db.get(Listing, booking.charger.listing_id)
    return BookingInfo.of(booking, (listing.shop_name or "") if listing else "")


async def for_person(db: Db, booking_id: int, person: int) -> BookingInfo:
    """A booking its user or its merchant looks at; anyone else is refused."""
    booking = await info(db, booking_id)
    if person not in (booking.user_id, booking.merchant_id):
        raise NotAllowed("err.not_your_booking")
    return booking


async def for_merchant(db: Db, booking_id: int, merchant_id: int) -> BookingInfo:
    """A booking its merchant is about to decide on; anyone else is refused."""
    booking = await info(db, booking_id)
    if booking.merchant_id != merchant_id:
        raise NotAllowed("err.not_your_booking")
    return booking


def preset_reason(code: str) -> str:
    """A rejection reason chosen from REJECT_PRESETS, as stored ("preset:<code>")."""
    if code not in REJECT_PRESETS:
        raise InvalidInput("err.reason_unknown")
    return f"preset:{code}"


def cancellable(booking: BookingInfo, now: datetime) -> bool:
    """Whether its user is offered Cancel (``cancel`` decides for good)."""
    return booking.status in OPEN and (booking.start_at > now or booking.walkup)


def cancel_asks_to_confirm(booking: BookingInfo) -> bool:
    """An accepted booking (the merchant keeps the charger for it) is cancelled only
    after a second "Yes"; a request still waiting goes at once."""
    return booking.status == BookingStatus.ACCEPTED


def decidable(booking: BookingInfo) -> bool:
    """Whether its merchant is offered Accept and Reject."""
    return booking.status == BookingStatus.REQUESTED


async def bookable_for(
    db: Db, *, user_id: int, charger_id: int, rules: BookingRules
) -> ChargerInfo:
    """Book pressed: the charger, if it is bookable and the user may ask for another
    booking now (said at once rather than after every question; ``request`` checks
    it all again)."""
    asked = await _ask(db, charger_id, user_id=user_id, rules=rules)
    charger, _shop = asked.bookable()
    asked.check_limits(rules)
    return charger


async def acceptable(
    db: Db,
    *,
    user_id: int,
    charger_id: int,
    windows: list[Interval],
    rules: BookingRules,
    now: datetime | None = None,
) -> list[bool]:
    """Which of these windows a request would be accepted for (its rules: hours, taken,
    past, length, the user's own bookings): the quick choices offer only those."""
    now = now or utcnow()
    async with read(db):
        asked = await _ask(db, charger_id, user_id=user_id, rules=rules)
        charger, _shop = asked.bookable()
        if not windows:
            return []
        # the same rules as check_window and check_request_limits, with the bookings
        # of the span of all the windows read once, not once per window
        lo, hi = min(s for s, _e in windows), max(e for _s, e in windows)
        if asked.at_cap(rules):
            return [False] * len(windows)
        # one statement: the charger's taken windows and the user's own open requests
        # for it, within the span of all the windows
        span = {"charger_id": charger.id, "user_id": user_id, "start": lo, "end": hi}
        taken = (await db.execute(_TAKEN_OR_MINE, span)).all()
        return [
            window_allowed(charger, start, end, now, rules)
            and not any(s < end and e > start for s, e in taken)
            for start, end in windows
        ]


def window_allowed(
    charger: ChargerInfo, start: datetime, end: datetime, now: datetime, rules: BookingRules
) -> bool:
    """check_window's rules that need no database: not past, not empty, not too long,
    not too far ahead, within the charger's hours."""
    return (
        start < end
        and start >= now - timedelta(minutes=1)
        and MIN_BOOKING <= end - start <= MAX_BOOKING
        and start <= now + timedelta(days=rules.horizon_days)
        and fits_hours(charger.hours, start, end, rules.zone)
    )


@dataclass(frozen=True)
class Quote:
    """The summary before Confirm: the charger, the window and what it may cost."""

    charger: ChargerInfo
    shop_name: str
    start: datetime
    end: datetime
    estimate_minor: int | None


async def quote(
    db: Db,
    *,
    user_id: int,
    charger_id: int,
    start: datetime,
    end: datetime,
    rules: BookingRules,
    now: datetime | None = None,
) -> Quote:
    """A window typed for a booking: refused as ``request`` would refuse it (with
    the day's free windows when taken or closed), else its summary."""
    now = now or utcnow()
    async with read(db):
        asked = await _ask(db, charger_id, user_id=user_id, rules=rules, window=(start, end))
        charger, shop = asked.bookable()
        await check_window(db, charger, start, end, now, rules, busy=asked.busy)
        asked.check_limits(rules)
        estimate = estimate_minor(charger.price_minor, charger.price_unit, start, end)
        return Quote(charger, shop.name, start, end, estimate)
