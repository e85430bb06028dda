"""Charging sessions in the database: from the QR scan to the order.

Every step is a conditional UPDATE on the session's status inside one
transaction that also writes the audit row and the notifications it owes, so a
step that two paths race for (Stop pressed twice, the plug dropping off while
Stop is pressed, a restart in between) happens once. The order's session id is
unique as a last guard. The clock starts at the device's confirmation, never at
the request; a start that is never confirmed is FAILED and bills nothing.

The device side (power on/off through the PowerSwitch port) is in
``services.charging_control``; this module only records what happened.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from models import (
    Booking,
    BookingStatus,
    Charger,
    ChargingSession,
    EndReason,
    Listing,
    Order,
    SessionStatus,
)
from models.base import utcnow
from models.charging import ACTIVE_SESSION
from models.listing import SHORT_CODE_ALPHABET, SHORT_CODE_LENGTH
from services import audit, billing, cards, outbox, payments, settlement
from services.cards import Subject
from services.dto import BookingInfo, ChargeInfo, ChargerInfo, ChargeStatus, ListingInfo, OrderInfo
from services.errors import InvalidInput, NotAllowed, NotFound
from services.money import PAY_AT_SHOP, MoneyRules
from services.outbox import OutboxKind
from services.paging import Page, page_of
from services.returning import move_returning, take_row
from services.tx import Db, read, transaction

# a walk-up (issue #15) not started this long after it was accepted is a no-show
WALKUP_START = timedelta(minutes=10)


@dataclass(frozen=True)
class ChargingRules:
    zone: ZoneInfo
    # the platform's log of orders (the moderation group or ORDERS_CHAT_ID)
    platform_chat_id: int
    # a user may start this long before the booked window
    grace_before: timedelta = timedelta(minutes=10)
    warn_before: timedelta = timedelta(minutes=5)
    # fees, and whether bookings were prepaid (settled at the order) or paid at the shop
    money: MoneyRules = PAY_AT_SHOP


@dataclass(frozen=True)
class Scan:
    charger: ChargerInfo
    listing: ListingInfo
    booking: BookingInfo
    running: ChargeInfo | None  # the user's own session on this charger, if any

    @classmethod
    def of(
        cls, charger: Charger, listing: Listing, booking: Booking, running: ChargingSession | None
    ) -> "Scan":
        shop = listing.shop_name or ""
        return cls(
            ChargerInfo.of(charger),
            ListingInfo.of(listing),
            BookingInfo.of(booking, shop),
            ChargeInfo.of(running, shop) if running is not None else None,
        )


# -- reading ---------------------------------------------------------------------------


async def charger_by_token(db: Db, token: str) -> tuple[Charger, Listing]:
    """The charger a QR code names; renewed or unknown tokens are refused."""
    if not token or len(token) > 64:
        raise NotFound("err.qr_unknown")
    charger = (
        await db.scalars(
            select(Charger)
            .where(Charger.qr_token == token)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if charger is None or not charger.active:
        raise NotFound("err.qr_unknown")
    listing = await db.get(Listing, charger.listing_id, populate_existing=True)
    if listing is None or not listing.published:
        raise NotFound("err.qr_unknown")
    return charger, listing


async def active_session(
    db: Db, *, charger_id: int | None = None, user_id: int | None = None
) -> ChargingSession | None:
    if charger_id is not None and user_id is None:  # a start's question: built once
        return (await db.scalars(_ACTIVE_ON, {"charger_id": charger_id})).one_or_none()
    query = select(ChargingSession).where(ChargingSession.status.in_(ACTIVE_SESSION))
    if charger_id is not None:
        query = query.where(ChargingSession.charger_id == charger_id)
    if user_id is not None:
        query = query.where(ChargingSession.user_id == user_id)
    query = query.order_by(ChargingSession.id.desc()).limit(1)
    return (await db.scalars(query.execution_options(populate_existing=True))).one_or_none()


# a charger's active session
_ACTIVE_ON = (
    select(ChargingSession)
    .where(
        ChargingSession.status.in_(ACTIVE_SESSION),
        ChargingSession.charger_id == bindparam("charger_id"),
    )
    .order_by(ChargingSession.id.desc())
    .limit(1)
    .execution_options(populate_existing=True)
)


async def get(db: Db, session_id: int) -> ChargingSession:
    found = await db.get(ChargingSession, session_id, populate_existing=True)
    if found is None:
        raise NotFound("err.session_not_found")
    return found


async def order_of(db: Db, session_id: int) -> Order | None:
    return (
        await db.scalars(
            select(Order)
            .where(Order.session_id == session_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


async def get_order(db: Db, order_id: int) -> Order:
    order = await db.get(Order, order_id, populate_existing=True)
    if order is None:
        raise NotFound("err.session_not_found")
    return order


def usable_window(booking: Booking, now: datetime, rules: ChargingRules) -> None:
    """Refuse a start before the grace period or after the window."""
    opens = booking.start_at - rules.grace_before
    if now < opens:
        raise InvalidInput("err.scan_too_early", start=booking.start_at, opens=opens)
    if now >= booking.end_at:
        raise InvalidInput("err.scan_too_late", end=booking.end_at)


async def scan(
    db: Db,
    *,
    token: str,
    user_id: int,
    rules: ChargingRules,
    now: datetime | None = None,
) -> Scan:
    """What a scanned QR code means for this user now, or a refusal that says why
    (services.walkup.scan offers Charge now where this says "no booking")."""
    async with read(db):
        found = await scan_booking(db, token, user_id, rules, now or utcnow())
    assert found is not None
    return found


async def scan_booking(
    db: Db,
    token: str,
    user_id: int,
    rules: ChargingRules,
    now: datetime,
    *,
    or_none: bool = False,
) -> Scan | None:
    """In the caller's read: the user's booking (or session) of the scanned charger to
    use now, or a refusal that says why it cannot be used. ``or_none``: None instead
    of the refusal when the user has nothing open on it (no booking, or only closed
    ones), where a walk-up may be offered."""
    charger, listing = await charger_by_token(db, token)
    running = await active_session(db, charger_id=charger.id)
    if running is not None and running.user_id == user_id:
        return Scan.of(charger, listing, running.booking, running)
    mine = (
        await db.scalars(
            select(Booking)
            .where(Booking.user_id == user_id, Booking.charger_id == charger.id)
            .order_by(Booking.start_at)
            .execution_options(populate_existing=True)
        )
    ).all()
    accepted = [b for b in mine if b.status == BookingStatus.ACCEPTED]
    current = next((b for b in accepted if b.end_at > now), None)
    if current is None:
        if accepted:  # only windows that have passed (NO_SHOW follows shortly)
            raise InvalidInput("err.scan_too_late", end=accepted[-1].end_at)
        # a booking to use now elsewhere says more than an old one here
        elsewhere = (
            await db.scalars(
                select(Booking)
                .where(
                    Booking.user_id == user_id,
                    Booking.status == BookingStatus.ACCEPTED,
                    Booking.end_at > now,
                )
                .order_by(Booking.start_at)
                .limit(1)
            )
        ).one_or_none()
        if elsewhere is not None:
            other = await db.get(Listing, elsewhere.charger.listing_id)
            raise InvalidInput(
                "err.scan_other_charger",
                shop=other.shop_name if other else "",
                n=elsewhere.charger.position + 1,
                start=elsewhere.start_at,
            )
        waiting = [b for b in mine if b.status in (BookingStatus.UNPAID, BookingStatus.REQUESTED)]
        if or_none and not waiting:  # a request still open says more than Charge now
            return None
        if mine:
            latest = max(mine, key=lambda b: b.created_at)
            raise InvalidInput("err.scan_booking_status", status=latest.status.value)
        raise NotFound("err.scan_no_booking")
    usable_window(current, now, rules)
    if running is not None:
        raise InvalidInput("err.charger_busy", until=running.booking.end_at)
    return Scan.of(charger, listing, current, None)


# -- short codes (issue #15): a label's code typed instead of scanned ----------------


def normalize_code(text: str) -> str:
    """``k7p2qx``, ``K7P-2QX``, ``k7p 2qx`` → ``K7P2QX``; anything that cannot be a
    label's code is refused (letters that read alike are not guessed at: a code
    never has them, so one typed with them is a typo to show, not to fix silently)."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != SHORT_CODE_LENGTH or any(c not in SHORT_CODE_ALPHABET for c in code):
        raise InvalidInput("label.err_format")
    return code


async def token_for_code(db: Db, code: str) -> str:
    """``/code K7P2QX``: the QR token of the label that code is printed on."""
    normalized = normalize_code(code)
    async with read(db):
        token = (
            await db.scalars(select(Charger.qr_token).where(Charger.short_code == normalized))
        ).one_or_none()
    if token is None:
        raise NotFound("label.err_unknown")
    return token


# -- starting --------------------------------------------------------------------------


# A start's statements, built once (building one costs more than running it)
# the booking and its charger, read and locked in one statement
_BOOKING_AND_CHARGER = (
    select(Booking)
    .join(Charger, Charger.id == Booking.charger_id)
    .options(contains_eager(Booking.charger))
    .where(Booking.id == bindparam("booking_id"))
    .with_for_update(of=(Booking, Charger))
    .execution_options(populate_existing=True)
)
# the device confirmed: the booking charges, if still accepted and its window open
_BOOKING_CHARGING = (
    update(Booking)
    .where(
        Booking.id == bindparam("booking_id"),
        Booking.status == BookingStatus.ACCEPTED,
        Booking.end_at > bindparam("at"),
    )
    .values(status=BookingStatus.CHARGING)
    .execution_options(synchronize_session=False)  # the booking held is set by hand
)


async def begin_start(
    db: Db,
    *,
    booking_id: int,
    user_id: int,
    rules: ChargingRules,
    now: datetime | None = None,
) -> ChargingSession:
    """A STARTING session for an ACCEPTED booking whose window is open; the charger's
    row lock (and the one-active-session index) lets only one start win."""
    now = now or utcnow()
    async with transaction(db):
        # the booking and its charger read and locked in one statement (PostgreSQL:
        # the charger's lock serialises its starts, the booking's keeps its status
        # as read; SQLite's BEGIN IMMEDIATE serialises the whole unit)
        booking = (await db.scalars(_BOOKING_AND_CHARGER, {"booking_id": booking_id})).one_or_none()
        if booking is None:
            raise NotFound("err.booking_not_found")
        if booking.user_id != user_id:
            raise NotAllowed("err.not_your_booking")
        running = await active_session(db, charger_id=booking.charger_id)
        if running is not None:
            if running.booking_id == booking.id:
                raise InvalidInput("err.session_already")
            raise InvalidInput("err.charger_busy", until=running.booking.end_at)
        if booking.status != BookingStatus.ACCEPTED:
            raise InvalidInput("err.scan_booking_status", status=booking.status.value)
        usable_window(booking, now, rules)
        charger = booking.charger  # joined with the booking
        charge = ChargingSession(
            booking=booking,  # callers read its window: set here, not read again
            charger_id=booking.charger_id,
            plug_driver=charger.plug_driver,
            plug_id=charger.plug_id,
            user_id=booking.user_id,
            merchant_id=booking.merchant_id,
            status=SessionStatus.STARTING,
            requested_at=now,
        )
        db.add(charge)
        try:
            await db.flush()
        except IntegrityError:  # another start won the race past the checks
            raise InvalidInput("err.session_already") from None
        audit.record(db, "session", charge.id, "start", user_id, None, "starting")
    return charge


async def _move(
    db: Db,
    charging_id: int,
    to: SessionStatus,
    allowed: tuple[SessionStatus, ...],
    actor: int | None,
    **values: object,
) -> ChargingSession | None:
    """A conditional state change; None when another path moved the session first.

    The UPDATE returns the row as written: a session already read in this
    transaction (with its booking) takes those values, with no second read."""
    row = await move_returning(db, ChargingSession, charging_id, allowed, {"status": to, **values})
    if row is None:
        return None
    audit.record(db, "session", charging_id, to.value, actor, None, to.value)
    loaded = db.identity_map.get(identity_key(ChargingSession, charging_id))
    if not isinstance(loaded, ChargingSession):
        return await get(db, charging_id)
    take_row(loaded, row)
    return loaded


async def confirm_start(
    db: Db,
    *,
    session_id: int,
    at: datetime,
    energy_kwh: float | None,
    notify_user: bool = False,
) -> ChargingSession | None:
    """The device confirmed power on: the clock starts at ``at``.

    Only while the booking is still ACCEPTED and its window open: a confirmation
    that comes after the window's end (or after a no-show or a cancel) fails the
    start instead (InvalidInput, once the FAILED state is committed), and the caller
    switches the plug off again. None when another path moved the session meanwhile.
    ``notify_user``: nobody is waiting on the Start button's answer (recovery found the
    plug on), so the user is told by a message that charging runs, or that it failed."""
    async with transaction(db):
        charge = await _move(
            db,
            session_id,
            SessionStatus.CHARGING,
            (SessionStatus.STARTING,),
            None,
            started_at=at,
            last_seen_at=at,
            start_kwh=energy_kwh,
            last_kwh=energy_kwh,
        )
        if charge is None:
            return None
        moved = await db.execute(_BOOKING_CHARGING, {"booking_id": charge.booking_id, "at": at})
        too_late = moved.rowcount != 1  # type: ignore[attr-defined]
        held = db.identity_map.get(identity_key(Booking, charge.booking_id))
        if not too_late and isinstance(held, Booking):  # as the database now has it
            set_committed_value(held, "status", BookingStatus.CHARGING)
        if too_late:
            await db.execute(
                update(ChargingSession)
                .where(ChargingSession.id == session_id)
                .values(
                    status=SessionStatus.FAILED,
                    started_at=None,
                    start_kwh=None,
                    last_kwh=None,
                    end_reason="too_late",
                    ended_at=at,
                )
            )
            audit.record(db, "session", session_id, "failed", None, "starting", "failed")
            await payments.release_hold(db, charge.booking, f"failed_start:{session_id}")
            if notify_user:
                outbox.enqueue(
                    db, charge.user_id, OutboxKind.SESSION_START_FAILED, session_id=session_id
                )
        else:
            outbox.enqueue(
                db, charge.merchant_id, OutboxKind.SESSION_STARTED, session_id=session_id
            )
            if notify_user:
                outbox.enqueue(
                    db, charge.user_id, OutboxKind.SESSION_RUNNING, session_id=session_id
                )
        owed = [(Subject.BOOKING, charge.booking_id)] if not too_late else []
        if notify_user:  # else the Start button's answer is the card's edit
            owed.append((Subject.CHARGE, session_id))
        await cards.refresh_all(db, *owed)
    if too_late:  # raised after the commit, which keeps the FAILED state
        raise InvalidInput("err.start_too_late")
    return charge


async def fail_start(db: Db, *, session_id: int, why: str, notify_user: bool = False) -> bool:
    """The device did not confirm: nothing is billed and the booking stays ACCEPTED."""
    async with transaction(db):
        charge = await _move(
            db,
            session_id,
            SessionStatus.FAILED,
            (SessionStatus.STARTING,),
            None,
            end_reason=why[:16],
            ended_at=utcnow(),
        )
        if charge is None:
            return False
        await payments.release_hold(db, charge.booking, f"failed_start:{session_id}")
        if notify_user:  # nobody is waiting on the Start button's answer (recovery)
            outbox.enqueue(
                db, charge.user_id, OutboxKind.SESSION_START_FAILED, session_id=session_id
            )
            # "Switching on…" left by a start that never finished ends in words
            await cards.refresh(db, Subject.CHARGE, session_id)
    return True


# -- running ---------------------------------------------------------------------------


async def record_reading(db: Db, *, session_id: int, kwh: float | None, at: datetime) -> None:
    """The device was heard while on: remember when, and its meter total."""
    values: dict[str, object] = {"last_seen_at": at}
    if kwh is not None:
        values["last_kwh"] = kwh
    async with transaction(db):
        await db.execute(
            update(ChargingSession)
            .where(
                ChargingSession.id == session_id,
                ChargingSession.status == SessionStatus.CHARGING,
            )
            .values(**values)
        )
        if kwh is not None:  # the first reading of a plug that had none at the start
            await db.execute(
                update(ChargingSession)
                .where(
                    ChargingSession.id == session_id,
                    ChargingSession.status == SessionStatus.CHARGING,
                    ChargingSession.start_kwh.is_(None),
                )
                .values(start_kwh=kwh)
            )


async def request_stop(
    db: Db,
    *,
    session_id: int,
    actor: int | None,
    at: datetime,
    reason: EndReason | None = None,
    admin: bool = False,
) -> ChargingSession | None:
    """CHARGING → STOPPING: the session ends at ``at`` whatever the device does next.
    None when it is no longer charging (stopped already, or by another path).

    Without ``reason`` it follows from who stops: the user, the merchant, or an admin
    (``admin``: the actor is one of the platform's admins)."""
    async with transaction(db):
        charge = await get(db, session_id)
        if actor is not None or reason is None:
            may_act(charge, actor, admin)
        if reason is None:
            if actor == charge.user_id:
                reason = EndReason.USER
            elif actor == charge.merchant_id:
                reason = EndReason.MERCHANT
            else:
                reason = EndReason.ADMIN
        stopping = await _move(
            db,
            session_id,
            SessionStatus.STOPPING,
            (SessionStatus.CHARGING,),
            actor,
            stop_requested_at=at,
            stopping_since=utcnow(),
            end_reason=reason.value,
        )
        if stopping is not None:
            await cards.refresh(db, Subject.CHARGE, session_id)
        return stopping


def may_act(charge: ChargingSession, person: int | None, admin: bool) -> None:
    """Who may look at and stop a session: its user, its merchant, an admin."""
    if not (admin or (person is not None and person in (charge.user_id, charge.merchant_id))):
        raise NotAllowed("err.not_your_session")


def running_bill(charge: ChargingSession, now: datetime, kwh: float | None) -> billing.Bill:
    """What the session costs so far (for the status message)."""
    booking = charge.booking
    started = charge.started_at or now
    return billing.bill(
        booking.price_minor,
        booking.price_unit,
        started,
        max(started, min(now, booking.end_at)),
        charge.start_kwh,
        kwh if kwh is not None else charge.last_kwh,
    )


async def finish(
    db: Db,
    *,
    session_id: int,
    rules: ChargingRules,
    ended_at: datetime | None = None,
    end_kwh: float | None = None,
    reason: EndReason | None = None,
    power_off_confirmed: bool | None = None,
    actor: int | None = None,
    from_status: tuple[SessionStatus, ...] = (SessionStatus.CHARGING, SessionStatus.STOPPING),
) -> Order | None:
    """Close a session and make its order, exactly once.

    ``ended_at`` defaults to when the stop was asked for; it never passes the
    booked window's end nor goes before the start. ``from_status`` keeps the
    device's own "off" (CHARGING only) from closing a session that a Stop is
    closing (STOPPING). Returns None when another path closed it first.
    """
    async with transaction(db):
        charge = await get(db, session_id)
        if charge.status not in from_status:
            return None
        booking = charge.booking
        assert charge.started_at is not None
        end = ended_at or charge.stop_requested_at or utcnow()
        end = max(charge.started_at, min(end, booking.end_at))
        why = reason.value if reason else (charge.end_reason or EndReason.USER.value)
        last_kwh = end_kwh if end_kwh is not None else charge.last_kwh
        closed = await _move(
            db,
            session_id,
            SessionStatus.COMPLETED,
            from_status,
            actor,
            ended_at=end,
            end_reason=why,
            last_kwh=last_kwh,
            power_off_confirmed=power_off_confirmed,
        )
        if closed is None:
            return None
        the_bill = billing.bill(
            booking.price_minor,
            booking.price_unit,
            charge.started_at,
            end,
            charge.start_kwh,
            last_kwh,
        )
        order = Order(
            charge=charge,  # the row at hand: no read of it after the flush
            booking_id=booking.id,
            charger_id=charge.charger_id,
            user_id=charge.user_id,
            merchant_id=charge.merchant_id,
            started_at=charge.started_at,
            ended_at=end,
            minutes=the_bill.minutes,
            energy_kwh=the_bill.energy_kwh,
            energy_suspect=the_bill.energy_suspect,
            price_minor=booking.price_minor,
            price_unit=booking.price_unit,
            currency=booking.currency,
            cost_minor=the_bill.cost_minor,
            end_reason=why,
        )
        settlement.split(order, rules.money)  # in the INSERT, not an UPDATE after it
        db.add(order)
        await db.flush()
        await db.execute(
            update(Booking).where(Booking.id == booking.id).values(status=BookingStatus.COMPLETED)
        )
        # after the booking's row: a payment locks booking, then accounts, too
        await settlement.settle(db, order, booking, rules.money, utcnow())
        audit.record(db, "order", order.id, "create", actor, None, why)
        for chat, audience in (
            (charge.user_id, "user"),
            (charge.merchant_id, "merchant"),
            (rules.platform_chat_id, "platform"),
        ):
            outbox.enqueue(db, chat, OutboxKind.ORDER, order_id=order.id, audience=audience)
        await cards.refresh_all(db, (Subject.CHARGE, charge.id), (Subject.BOOKING, booking.id))
    return order


# -- timed work ------------------------------------------------------------------------


async def due(db: Db, *conditions: object, limit: int = 100) -> list[ChargingSession]:
    """Sessions (with their booking) that match ``conditions``, oldest first."""
    query = (
        select(ChargingSession)
        .join(Booking, Booking.id == ChargingSession.booking_id)
        .where(*conditions)  # type: ignore[arg-type]
        .order_by(ChargingSession.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await db.scalars(query)).all())


async def warn_due(db: Db, rules: ChargingRules, now: datetime) -> int:
    """Tell users whose window ends within ``warn_before``; once per session."""
    to_warn = await due(
        db,
        ChargingSession.status == SessionStatus.CHARGING,
        ChargingSession.warned_at.is_(None),
        Booking.end_at <= now + rules.warn_before,
        Booking.end_at > now,
    )
    warned = 0
    for charge in to_warn:
        async with transaction(db):
            changed = await db.execute(
                update(ChargingSession)
                .where(ChargingSession.id == charge.id, ChargingSession.warned_at.is_(None))
                .values(warned_at=now)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            outbox.enqueue(db, charge.user_id, OutboxKind.SESSION_WARNING, session_id=charge.id)
            warned += 1
    return warned


async def window_ended(db: Db, now: datetime) -> list[ChargingSession]:
    """Sessions still charging after their window: to be stopped."""
    return await due(db, ChargingSession.status == SessionStatus.CHARGING, Booking.end_at <= now)


async def stale_starts(db: Db, before: datetime) -> list[ChargingSession]:
    """Starts pressed before ``before`` and still waiting for the device."""
    return await due(
        db,
        ChargingSession.status == SessionStatus.STARTING,
        ChargingSession.requested_at <= before,
    )


async def stale_stops(db: Db, before: datetime) -> list[ChargingSession]:
    """Stops taken in hand before ``before`` and still waiting for the device."""
    return await due(
        db,
        ChargingSession.status == SessionStatus.STOPPING,
        ChargingSession.stopping_since <= before,
    )


async def mark_no_shows(db: Db, now: datetime, money: MoneyRules = PAY_AT_SHOP) -> int:
    """ACCEPTED bookings whose window ended without a session: NO_SHOW, once each
    (a prepaid hold: NO_SHOW_FEE_PERCENT kept for the merchant, the rest returned).
    A walk-up is for now: not started within WALKUP_START of its acceptance, it is a
    no-show too, and the charger is free again."""
    starting = exists().where(
        ChargingSession.booking_id == Booking.id, ChargingSession.status.in_(ACTIVE_SESSION)
    )
    missed = or_(
        Booking.end_at <= now,
        and_(Booking.walkup.is_(True), Booking.decided_at <= now - WALKUP_START),
    )
    due = (
        await db.scalars(
            select(Booking.id)
            .where(Booking.status == BookingStatus.ACCEPTED, missed, ~starting)
            .limit(100)
        )
    ).all()
    marked = 0
    for booking_id in due:
        async with transaction(db):
            changed = await db.execute(
                update(Booking)
                .where(
                    Booking.id == booking_id,
                    Booking.status == BookingStatus.ACCEPTED,
                    missed,
                    ~starting,
                )
                .values(status=BookingStatus.NO_SHOW)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            booking = await db.get(Booking, booking_id, populate_existing=True)
            assert booking is not None
            audit.record(db, "booking", booking_id, "no_show", None, "accepted", "no_show")
            await settlement.no_show(db, booking, money)
            outbox.enqueue(
                db, booking.merchant_id, OutboxKind.BOOKING_NO_SHOW, booking_id=booking_id
            )
            outbox.enqueue(
                db, booking.user_id, OutboxKind.BOOKING_NO_SHOW_USER, booking_id=booking_id
            )
            await cards.refresh(db, Subject.BOOKING, booking_id)
            marked += 1
    return marked


async def open_sessions(db: Db) -> list[ChargingSession]:
    """Every session not yet closed, with its booking and charger (for reconciliation)."""
    return list(
        (
            await db.scalars(
                select(ChargingSession)
                .where(ChargingSession.status.in_(ACTIVE_SESSION))
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def recently_failed(db: Db, since: datetime) -> list[ChargingSession]:
    """Starts given up since ``since``: their plug may have switched on late."""
    return list(
        (
            await db.scalars(
                select(ChargingSession).where(
                    ChargingSession.status == SessionStatus.FAILED,
                    ChargingSession.ended_at >= since,
                )
            )
        ).all()
    )


async def charging_now(db: Db) -> list[ChargingSession]:
    return list(
        (
            await db.scalars(
                select(ChargingSession)
                .where(ChargingSession.status == SessionStatus.CHARGING)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def open_session_on_plug(db: Db, driver: str, plug_id: str) -> ChargingSession | None:
    return (
        await db.scalars(
            select(ChargingSession)
            .where(
                ChargingSession.plug_id == plug_id,
                ChargingSession.plug_driver == driver,
                ChargingSession.status.in_(ACTIVE_SESSION),
            )
            .order_by(ChargingSession.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


async def chargers_of_plug(db: Db, driver: str, plug_id: str) -> list[int]:
    return list(
        (
            await db.scalars(
                select(Charger.id).where(
                    Charger.plug_driver == driver,
                    Charger.plug_id == plug_id,
                    Charger.active.is_(True),
                )
            )
        ).all()
    )


async def running_page(db: Db, number: int, size: int) -> Page[ChargeStatus]:
    """One page of the sessions charging now, the oldest start first, each with what
    it costs so far by its last stored reading."""
    statement = (
        select(ChargingSession)
        .where(ChargingSession.status == SessionStatus.CHARGING)
        .order_by(ChargingSession.started_at, ChargingSession.id)
        .execution_options(populate_existing=True)
    )
    async with read(db):
        page: Page[ChargingSession] = await page_of(db, statement, number, size)
        now = utcnow()
        items = [status_of(charge, await _info(db, charge), now, None) for charge in page.items]
    return Page(items, page.total, page.number, page.pages, page.size)


# -- for people: what handlers and ui show (plain values) ------------------------------


async def charge_info(db: Db, session_id: int) -> ChargeInfo:
    async with read(db):
        return await _info(db, await get(db, session_id))


async def info_of(db: Db, charge: ChargingSession) -> ChargeInfo:
    """``charge_info`` of a session just read or moved (no second read of its row)."""
    async with read(db):
        return await _info(db, charge)


async def _info(db: Db, charge: ChargingSession) -> ChargeInfo:
    # the shop's name only: the listing's row (and its chargers) are not needed
    shop = await db.scalar(
        select(Listing.shop_name).where(Listing.id == charge.booking.charger.listing_id)
    )
    return ChargeInfo.of(charge, shop or "")


def status_of(
    charge: ChargingSession, info: ChargeInfo, now: datetime, kwh: float | None
) -> ChargeStatus:
    """The session and its bill so far (``kwh``: the plug's latest meter total, if
    known; else the last one stored)."""
    return ChargeStatus(info, running_bill(charge, now, kwh))


async def charge_for(
    db: Db, session_id: int, *, person: int, admin: bool, closed_ok: bool = False
) -> ChargeInfo:
    """The session a button names, if ``person`` may act on it (``may_act``) and,
    unless ``closed_ok``, it is still open; else a refusal that says why."""
    async with read(db):
        charge = await db.get(ChargingSession, session_id, populate_existing=True)
        if charge is None:
            raise NotAllowed("err.not_your_session")
        may_act(charge, person, admin)
        if charge.status in (SessionStatus.COMPLETED, SessionStatus.FAILED) and not closed_ok:
            order = await order_of(db, charge.id)
            raise InvalidInput("charge.already_ended", order=order.id if order else "—")
        return await _info(db, charge)


async def to_stop(db: Db, *, user_id: int) -> ChargeInfo | None:
    """The user's session that /stop stops; None when none runs, refused while it
    is still starting."""
    async with read(db):
        charge = await active_session(db, user_id=user_id)
        if charge is None:
            return None
        if charge.status == SessionStatus.STARTING:
            raise InvalidInput("err.session_starting")
        return await _info(db, charge)


async def order_info(db: Db, order_id: int) -> OrderInfo:
    async with read(db):
        order = await get_order(db, order_id)
        charger = await db.get(Charger, order.charger_id)  # loaded with the order
        assert charger is not None
        # the shop's name only: not the listing's row and its chargers
        shop = await db.scalar(select(Listing.shop_name).where(Listing.id == charger.listing_id))
        return OrderInfo.of(order, charger, shop or "")


# -- stop when full (issue #15) --------------------------------------------------------


@dataclass(frozen=True)
class FullWatch:
    """What "full" means for a session's charger, and where its watch stands."""

    below_w: int  # 0: never ends as full
    minutes: int
    drew_power: bool
    low_power_since: datetime | None

    def full(self, now: datetime) -> bool:
        """The power has stayed under the threshold for the charger's minutes."""
        low = self.low_power_since
        return low is not None and now - low >= timedelta(minutes=self.minutes)


async def full_watch(db: Db, session_id: int) -> FullWatch | None:
    """The watch of a CHARGING session (None: not charging)."""
    async with read(db):
        charge = await get(db, session_id)
        if charge.status != SessionStatus.CHARGING:
            return None
        charger = await db.get(Charger, charge.charger_id)
        assert charger is not None
        return FullWatch(
            charger.full_below_w, charger.full_minutes, charge.drew_power, charge.low_power_since
        )


async def record_full_watch(
    db: Db, *, session_id: int, drew_power: bool, low_power_since: datetime | None
) -> None:
    """The watch changed (power rose over the threshold, or fell under it): stored, so a
    restart resumes it."""
    async with transaction(db):
        await db.execute(
            update(ChargingSession)
            .where(
                ChargingSession.id == session_id,
                ChargingSession.status == SessionStatus.CHARGING,
            )
            .values(drew_power=drew_power, low_power_since=low_power_since)
        )


async def mark_meters_power(db: Db, plugs: Iterable[tuple[str, str]]) -> None:
    """These plugs (driver, plug id) reported power readings: their chargers can offer
    "until full". One statement per driver, however many plugs."""
    by_driver: dict[str, list[str]] = {}
    for driver, plug_id in plugs:
        by_driver.setdefault(driver, []).append(plug_id)
    async with transaction(db):
        for driver, plug_ids in by_driver.items():
            for chunk in range(0, len(plug_ids), 500):  # bound the statement's parameters
                await db.execute(
                    update(Charger)
                    .where(
                        Charger.plug_driver == driver,
                        Charger.plug_id.in_(plug_ids[chunk : chunk + 500]),
                        Charger.meters_power.is_(False),
                    )
                    .values(meters_power=True)
                )


async def stored_status(
    db: Db,
    session_id: int,
    now: datetime | None = None,
    *,
    kwh: float | None = None,
    power_w: float | None = None,
) -> ChargeStatus:
    """The session and its bill so far (a card refreshed by the outbox, which has no
    plug to ask): by the reading the refresh carries, else the last one stored."""
    async with read(db):
        charge = await get(db, session_id)
        status = status_of(charge, await _info(db, charge), now or utcnow(), kwh)
        return replace(status, power_w=power_w)


async def order_for_session(db: Db, session_id: int) -> OrderInfo | None:
    """The order a closed session made, if it made one."""
    async with read(db):
        order = await order_of(db, session_id)
        return None if order is None else await order_info(db, order.id)


async def starting_of(db: Db, booking_id: int) -> int | None:
    """The session a Start of this booking has just begun (still STARTING)."""
    async with read(db):
        return await db.scalar(
            select(ChargingSession.id).where(
                ChargingSession.booking_id == booking_id,
                ChargingSession.status == SessionStatus.STARTING,
            )
        )
