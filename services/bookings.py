"""Bookings: request → the merchant accepts or rejects → (charging, a later
release). Also expiry when nobody answers, and the user's cancellation.

Accepting checks for an overlapping accepted booking and changes the state in
one transaction that first locks the charger's row (on SQLite the whole unit of
work holds the write lock), so two accepts pressed at once cannot both win.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Booking, BookingStatus, Charger, ChargingSession, Listing, User
from models.base import utcnow
from models.charging import ACTIVE_SESSION
from services import audit, outbox, payments
from services.deadlines import answer_by
from services.errors import InvalidInput, NotAllowed, NotFound
from services.money import PAY_AT_SHOP, MoneyRules
from services.paging import Page, page_of
from services.text import clean_reason
from services.tx import transaction
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


def estimate_minor(price_minor: int, unit: str, start: datetime, end: datetime) -> int | None:
    """Per hour: price × duration, to the minor unit, half up. Per kWh: unknown."""
    if unit != "hour":
        return None
    minutes = Decimal(int((end - start).total_seconds() // 60))
    return int((Decimal(price_minor) * minutes / 60).quantize(Decimal(1), ROUND_HALF_UP))


async def bookable_charger(session: AsyncSession, charger_id: int) -> Charger:
    """A charger of a public, unpaused listing; else a refusal that says why."""
    charger = await session.get(Charger, charger_id, populate_existing=True)
    if charger is None or not charger.active:
        raise NotFound("err.charger_gone")
    listing = await session.get(Listing, charger.listing_id, populate_existing=True)
    if listing is None or not listing.published:
        raise NotFound("err.charger_gone")
    if listing.paused:
        raise InvalidInput("err.listing_paused")
    return charger


async def busy_intervals(
    session: AsyncSession, charger_id: int, start: datetime, end: datetime
) -> list[Interval]:
    rows = await session.execute(
        select(Booking.start_at, Booking.end_at).where(
            Booking.charger_id == charger_id,
            Booking.status.in_((BookingStatus.ACCEPTED, BookingStatus.CHARGING)),
            Booking.start_at < end,
            Booking.end_at > start,
        )
    )
    return [(s, e) for s, e in rows.all()]


async def check_window(
    session: AsyncSession,
    charger: Charger,
    start: datetime,
    end: datetime,
    now: datetime,
    rules: BookingRules,
) -> None:
    """Refuse a window that is past, empty, too long, too far ahead, outside the
    hours, or taken.

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
        raise InvalidInput("err.window_hours", **await _free(session, charger, day, now, rules))
    if await busy_intervals(session, charger.id, start, end):
        raise InvalidInput("err.window_taken", **await _free(session, charger, day, now, rules))


async def _free(
    session: AsyncSession, charger: Charger, day, now: datetime, rules: BookingRules
) -> dict[str, object]:
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=rules.zone)
    busy = await busy_intervals(
        session, charger.id, day_start - timedelta(days=1), day_start + timedelta(days=2)
    )
    windows = free_windows(charger.hours, day, busy, rules.zone, now)
    return {"free": [(s.isoformat(), e.isoformat()) for s, e in windows]}


async def request(
    session: AsyncSession,
    *,
    user_id: int,
    charger_id: int,
    device_kind: str,
    device_model: str,
    start: datetime,
    end: datetime,
    rules: BookingRules,
    now: datetime | None = None,
) -> Booking:
    now = now or utcnow()
    async with transaction(session):
        await check_request_limits(session, user_id, charger_id, start, end, rules, lock=True)
        charger = await bookable_charger(session, charger_id)
        if device_kind not in charger.device_kinds:
            raise InvalidInput("err.device_kind")
        await check_window(session, charger, start, end, now, rules)
        listing = await session.get(Listing, charger.listing_id)
        assert listing is not None
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
        session.add(booking)
        await session.flush()
        audit.record(session, "booking", booking.id, "request", user_id, None, booking.status.value)
        if prepaid:  # paid from the wallet (the merchant asked) or an invoice owed
            await payments.checkout(session, booking, rules.money, now)
        else:
            outbox.enqueue(session, listing.merchant_id, "booking_request", booking_id=booking.id)
    return booking


async def check_request_limits(
    session: AsyncSession,
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
    double press cannot pass the count twice. Without it, an early check (when
    Book is pressed) that saves the person typing a request bound to fail.
    """
    if lock:
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    if rules.max_open_requests is not None:
        waiting = await session.scalar(
            select(func.count())
            .select_from(Booking)
            .where(Booking.user_id == user_id, Booking.status.in_(WAITING))
        )
        if (waiting or 0) >= rules.max_open_requests:
            raise NotAllowed("err.too_many_requests", max=rules.max_open_requests)
    if charger_id is None or start is None or end is None:
        return
    mine = await session.scalar(
        select(Booking.id)
        .where(
            Booking.user_id == user_id,
            Booking.charger_id == charger_id,
            Booking.status.in_(OPEN),
            Booking.start_at < end,
            Booking.end_at > start,
        )
        .limit(1)
    )
    if mine is not None:
        raise InvalidInput("err.booking_repeat", id=mine)


async def _locked(session: AsyncSession, booking_id: int) -> Booking:
    booking = await session.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        raise NotFound("err.booking_not_found")
    # serialise deciders of one charger: PostgreSQL row lock (SQLite: BEGIN IMMEDIATE)
    await session.execute(
        select(Charger.id).where(Charger.id == booking.charger_id).with_for_update()
    )
    return booking


async def _move(
    session: AsyncSession,
    booking: Booking,
    to: BookingStatus,
    allowed: tuple[BookingStatus, ...],
    actor: int | None,
    reason: str | None = None,
) -> bool:
    """A conditional state change: False when the booking moved on meanwhile."""
    changed = await session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status.in_(allowed))
        .values(status=to, decided_at=utcnow(), reason=reason)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit.record(
        session, "booking", booking.id, to.value, actor, booking.status.value, to.value, reason
    )
    await session.refresh(booking)
    return True


async def accept(
    session: AsyncSession, *, booking_id: int, merchant_id: int, now: datetime | None = None
) -> Booking:
    now = now or utcnow()
    async with transaction(session):
        booking = await _locked(session, booking_id)
        if booking.merchant_id != merchant_id:
            raise NotAllowed("err.not_your_booking")
        if booking.status != BookingStatus.REQUESTED:
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        if booking.respond_by <= now:
            raise InvalidInput("err.booking_decided", status=BookingStatus.EXPIRED.value)
        if await busy_intervals(session, booking.charger_id, booking.start_at, booking.end_at):
            raise InvalidInput("err.booking_overlap")
        if not await _move(
            session, booking, BookingStatus.ACCEPTED, (BookingStatus.REQUESTED,), merchant_id
        ):
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        outbox.enqueue(session, booking.user_id, "booking_accepted", booking_id=booking.id)
    return booking


async def reject(
    session: AsyncSession, *, booking_id: int, merchant_id: int, reason: str
) -> Booking:
    reason = clean_reason(reason)
    async with transaction(session):
        booking = await _locked(session, booking_id)
        if booking.merchant_id != merchant_id:
            raise NotAllowed("err.not_your_booking")
        if not await _move(
            session,
            booking,
            BookingStatus.REJECTED,
            (BookingStatus.REQUESTED,),
            merchant_id,
            reason,
        ):
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        await payments.release_hold(session, booking, "rejected", merchant_id)
        outbox.enqueue(session, booking.user_id, "booking_rejected", booking_id=booking.id)
    return booking


async def cancel(
    session: AsyncSession, *, booking_id: int, user_id: int, now: datetime | None = None
) -> Booking:
    now = now or utcnow()
    async with transaction(session):
        booking = await _locked(session, booking_id)
        if booking.user_id != user_id:
            raise NotAllowed("err.not_your_booking")
        if booking.status == BookingStatus.ACCEPTED and booking.start_at <= now:
            raise InvalidInput("err.booking_started")
        if await session.scalar(  # switched on in the grace before the window
            select(ChargingSession.id).where(
                ChargingSession.booking_id == booking.id,
                ChargingSession.status.in_(ACTIVE_SESSION),
            )
        ):
            raise InvalidInput("err.booking_started")
        await session.refresh(booking)  # as it is now that deciders queue behind us
        was_unpaid = booking.status == BookingStatus.UNPAID
        if not await _move(session, booking, BookingStatus.CANCELLED, OPEN, user_id):
            raise InvalidInput("err.booking_decided", status=booking.status.value)
        await payments.release_hold(session, booking, "cancelled", user_id)
        if not was_unpaid:  # the merchant never heard of an unpaid booking
            outbox.enqueue(session, booking.merchant_id, "booking_cancelled", booking_id=booking.id)
    return booking


async def expire_due(session: AsyncSession, now: datetime | None = None) -> int:
    """Expire requests nobody answered in time; each exactly once, also after
    downtime (the due time is in the row, not in a timer in memory)."""
    now = now or utcnow()
    due = (
        await session.scalars(
            select(Booking.id)
            .where(Booking.status == BookingStatus.REQUESTED, Booking.respond_by <= now)
            .limit(100)
        )
    ).all()
    expired = 0
    for booking_id in due:
        async with transaction(session):
            booking = await session.get(Booking, booking_id, populate_existing=True)
            if booking is None or not await _move(
                session, booking, BookingStatus.EXPIRED, (BookingStatus.REQUESTED,), None
            ):
                continue
            await payments.release_hold(session, booking, "expired")
            outbox.enqueue(session, booking.user_id, "booking_expired", booking_id=booking.id)
            outbox.enqueue(
                session, booking.merchant_id, "booking_expired_merchant", booking_id=booking.id
            )
            expired += 1
    return expired


async def get(session: AsyncSession, booking_id: int) -> Booking:
    booking = await session.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        raise NotFound("err.booking_not_found")
    return booking


async def page_of_user(
    session: AsyncSession, user_id: int, number: int, size: int
) -> Page[Booking]:
    """One page of the user's bookings, the latest window first."""
    statement = (
        select(Booking)
        .where(Booking.user_id == user_id)
        .order_by(Booking.start_at.desc(), Booking.id.desc())
    )
    return await page_of(session, statement, number, size)


async def page_of_merchant(
    session: AsyncSession, merchant_id: int, number: int, size: int
) -> Page[Booking]:
    """One page of the bookings of the merchant's chargers, the latest window first."""
    statement = (
        select(Booking)
        .where(Booking.merchant_id == merchant_id)
        .order_by(Booking.start_at.desc(), Booking.id.desc())
    )
    return await page_of(session, statement, number, size)
