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

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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
from services import audit, billing, outbox, payments, settlement
from services.errors import InvalidInput, NotAllowed, NotFound
from services.money import PAY_AT_SHOP, MoneyRules
from services.paging import Page, page_of
from services.tx import transaction


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
    charger: Charger
    listing: Listing
    booking: Booking
    running: ChargingSession | None  # the user's own session on this charger, if any


# -- reading ---------------------------------------------------------------------------


async def charger_by_token(session: AsyncSession, token: str) -> tuple[Charger, Listing]:
    """The charger a QR code names; renewed or unknown tokens are refused."""
    if not token or len(token) > 64:
        raise NotFound("err.qr_unknown")
    charger = (
        await session.scalars(
            select(Charger)
            .where(Charger.qr_token == token)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if charger is None or not charger.active:
        raise NotFound("err.qr_unknown")
    listing = await session.get(Listing, charger.listing_id, populate_existing=True)
    if listing is None or not listing.published:
        raise NotFound("err.qr_unknown")
    return charger, listing


async def active_session(
    session: AsyncSession, *, charger_id: int | None = None, user_id: int | None = None
) -> ChargingSession | None:
    query = select(ChargingSession).where(ChargingSession.status.in_(ACTIVE_SESSION))
    if charger_id is not None:
        query = query.where(ChargingSession.charger_id == charger_id)
    if user_id is not None:
        query = query.where(ChargingSession.user_id == user_id)
    query = query.order_by(ChargingSession.id.desc()).limit(1)
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def get(session: AsyncSession, session_id: int) -> ChargingSession:
    found = await session.get(ChargingSession, session_id, populate_existing=True)
    if found is None:
        raise NotFound("err.session_not_found")
    return found


async def order_of(session: AsyncSession, session_id: int) -> Order | None:
    return (
        await session.scalars(
            select(Order)
            .where(Order.session_id == session_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


async def get_order(session: AsyncSession, order_id: int) -> Order:
    order = await session.get(Order, order_id, populate_existing=True)
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
    session: AsyncSession,
    *,
    token: str,
    user_id: int,
    rules: ChargingRules,
    now: datetime | None = None,
) -> Scan:
    """What a scanned QR code means for this user now, or a refusal that says why."""
    now = now or utcnow()
    charger, listing = await charger_by_token(session, token)
    running = await active_session(session, charger_id=charger.id)
    if running is not None and running.user_id == user_id:
        return Scan(charger, listing, running.booking, running)
    mine = (
        await session.scalars(
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
            await session.scalars(
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
            other = await session.get(Listing, elsewhere.charger.listing_id)
            raise InvalidInput(
                "err.scan_other_charger",
                shop=other.shop_name if other else "",
                n=elsewhere.charger.position + 1,
                start=elsewhere.start_at,
            )
        if mine:
            latest = max(mine, key=lambda b: b.created_at)
            raise InvalidInput("err.scan_booking_status", status=latest.status.value)
        raise NotFound("err.scan_no_booking")
    usable_window(current, now, rules)
    if running is not None:
        raise InvalidInput("err.charger_busy", until=running.booking.end_at)
    return Scan(charger, listing, current, None)


# -- starting --------------------------------------------------------------------------


async def begin_start(
    session: AsyncSession,
    *,
    booking_id: int,
    user_id: int,
    rules: ChargingRules,
    now: datetime | None = None,
) -> ChargingSession:
    """A STARTING session for an ACCEPTED booking whose window is open; the charger's
    row lock (and the one-active-session index) lets only one start win."""
    now = now or utcnow()
    async with transaction(session):
        booking = await session.get(Booking, booking_id, populate_existing=True)
        if booking is None:
            raise NotFound("err.booking_not_found")
        if booking.user_id != user_id:
            raise NotAllowed("err.not_your_booking")
        await session.execute(
            select(Charger.id).where(Charger.id == booking.charger_id).with_for_update()
        )
        await session.refresh(booking)
        running = await active_session(session, charger_id=booking.charger_id)
        if running is not None:
            if running.booking_id == booking.id:
                raise InvalidInput("err.session_already")
            raise InvalidInput("err.charger_busy", until=running.booking.end_at)
        if booking.status != BookingStatus.ACCEPTED:
            raise InvalidInput("err.scan_booking_status", status=booking.status.value)
        usable_window(booking, now, rules)
        charger = await session.get(Charger, booking.charger_id, populate_existing=True)
        assert charger is not None
        charging = ChargingSession(
            booking_id=booking.id,
            charger_id=booking.charger_id,
            plug_driver=charger.plug_driver,
            plug_id=charger.plug_id,
            user_id=booking.user_id,
            merchant_id=booking.merchant_id,
            status=SessionStatus.STARTING,
            requested_at=now,
        )
        session.add(charging)
        try:
            await session.flush()
        except IntegrityError:  # another start won the race past the checks
            raise InvalidInput("err.session_already") from None
        await session.refresh(charging, ["booking"])  # callers read its window
        audit.record(session, "session", charging.id, "start", user_id, None, "starting")
    return charging


async def _move(
    session: AsyncSession,
    charging_id: int,
    to: SessionStatus,
    allowed: tuple[SessionStatus, ...],
    actor: int | None,
    **values: object,
) -> ChargingSession | None:
    """A conditional state change; None when another path moved the session first."""
    changed = await session.execute(
        update(ChargingSession)
        .where(ChargingSession.id == charging_id, ChargingSession.status.in_(allowed))
        .values(status=to, **values)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    audit.record(session, "session", charging_id, to.value, actor, None, to.value)
    return await get(session, charging_id)


async def confirm_start(
    session: AsyncSession,
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
    async with transaction(session):
        charging = await _move(
            session,
            session_id,
            SessionStatus.CHARGING,
            (SessionStatus.STARTING,),
            None,
            started_at=at,
            last_seen_at=at,
            start_kwh=energy_kwh,
            last_kwh=energy_kwh,
        )
        if charging is None:
            return None
        moved = await session.execute(
            update(Booking)
            .where(
                Booking.id == charging.booking_id,
                Booking.status == BookingStatus.ACCEPTED,
                Booking.end_at > at,
            )
            .values(status=BookingStatus.CHARGING)
        )
        too_late = moved.rowcount != 1  # type: ignore[attr-defined]
        if too_late:
            await session.execute(
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
            audit.record(session, "session", session_id, "failed", None, "starting", "failed")
            await payments.release_hold(session, charging.booking, f"failed_start:{session_id}")
            if notify_user:
                outbox.enqueue(
                    session, charging.user_id, "session_start_failed", session_id=session_id
                )
        else:
            outbox.enqueue(session, charging.merchant_id, "session_started", session_id=session_id)
            if notify_user:
                outbox.enqueue(session, charging.user_id, "session_running", session_id=session_id)
    if too_late:  # raised after the commit, which keeps the FAILED state
        raise InvalidInput("err.start_too_late")
    return charging


async def fail_start(
    session: AsyncSession, *, session_id: int, why: str, notify_user: bool = False
) -> bool:
    """The device did not confirm: nothing is billed and the booking stays ACCEPTED."""
    async with transaction(session):
        charging = await _move(
            session,
            session_id,
            SessionStatus.FAILED,
            (SessionStatus.STARTING,),
            None,
            end_reason=why[:16],
            ended_at=utcnow(),
        )
        if charging is None:
            return False
        await payments.release_hold(session, charging.booking, f"failed_start:{session_id}")
        if notify_user:  # nobody is waiting on the Start button's answer (recovery)
            outbox.enqueue(session, charging.user_id, "session_start_failed", session_id=session_id)
    return True


# -- running ---------------------------------------------------------------------------


async def record_reading(
    session: AsyncSession, *, session_id: int, kwh: float | None, at: datetime
) -> None:
    """The device was heard while on: remember when, and its meter total."""
    values: dict[str, object] = {"last_seen_at": at}
    if kwh is not None:
        values["last_kwh"] = kwh
    async with transaction(session):
        await session.execute(
            update(ChargingSession)
            .where(
                ChargingSession.id == session_id,
                ChargingSession.status == SessionStatus.CHARGING,
            )
            .values(**values)
        )
        if kwh is not None:  # the first reading of a plug that had none at the start
            await session.execute(
                update(ChargingSession)
                .where(
                    ChargingSession.id == session_id,
                    ChargingSession.status == SessionStatus.CHARGING,
                    ChargingSession.start_kwh.is_(None),
                )
                .values(start_kwh=kwh)
            )


async def request_stop(
    session: AsyncSession,
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
    async with transaction(session):
        charging = await get(session, session_id)
        if reason is None:
            if actor == charging.user_id:
                reason = EndReason.USER
            elif actor == charging.merchant_id:
                reason = EndReason.MERCHANT
            elif admin:
                reason = EndReason.ADMIN
            else:
                raise NotAllowed("err.not_your_session")
        elif actor is not None and not (admin or actor in (charging.user_id, charging.merchant_id)):
            raise NotAllowed("err.not_your_session")
        return await _move(
            session,
            session_id,
            SessionStatus.STOPPING,
            (SessionStatus.CHARGING,),
            actor,
            stop_requested_at=at,
            stopping_since=utcnow(),
            end_reason=reason.value,
        )


def running_bill(charging: ChargingSession, now: datetime, kwh: float | None) -> billing.Bill:
    """What the session costs so far (for the status message)."""
    booking = charging.booking
    started = charging.started_at or now
    return billing.bill(
        booking.price_minor,
        booking.price_unit,
        started,
        max(started, min(now, booking.end_at)),
        charging.start_kwh,
        kwh if kwh is not None else charging.last_kwh,
    )


async def finish(
    session: AsyncSession,
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
    async with transaction(session):
        charging = await get(session, session_id)
        if charging.status not in from_status:
            return None
        booking = charging.booking
        assert charging.started_at is not None
        end = ended_at or charging.stop_requested_at or utcnow()
        end = max(charging.started_at, min(end, booking.end_at))
        why = reason.value if reason else (charging.end_reason or EndReason.USER.value)
        last_kwh = end_kwh if end_kwh is not None else charging.last_kwh
        closed = await _move(
            session,
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
            charging.started_at,
            end,
            charging.start_kwh,
            last_kwh,
        )
        order = Order(
            session_id=charging.id,
            booking_id=booking.id,
            charger_id=charging.charger_id,
            user_id=charging.user_id,
            merchant_id=charging.merchant_id,
            started_at=charging.started_at,
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
        session.add(order)
        await session.flush()
        await session.refresh(order, ["session"])
        await session.execute(
            update(Booking).where(Booking.id == booking.id).values(status=BookingStatus.COMPLETED)
        )
        # after the booking's row: a payment locks booking, then accounts, too
        await settlement.settle(session, order, booking, rules.money, utcnow())
        audit.record(session, "order", order.id, "create", actor, None, why)
        for chat, audience in (
            (charging.user_id, "user"),
            (charging.merchant_id, "merchant"),
            (rules.platform_chat_id, "platform"),
        ):
            outbox.enqueue(session, chat, "order", order_id=order.id, audience=audience)
    return order


# -- timed work ------------------------------------------------------------------------


async def due(
    session: AsyncSession, *conditions: object, limit: int = 100
) -> list[ChargingSession]:
    """Sessions (with their booking) that match ``conditions``, oldest first."""
    query = (
        select(ChargingSession)
        .join(Booking, Booking.id == ChargingSession.booking_id)
        .where(*conditions)  # type: ignore[arg-type]
        .order_by(ChargingSession.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(query)).all())


async def warn_due(session: AsyncSession, rules: ChargingRules, now: datetime) -> int:
    """Tell users whose window ends within ``warn_before``; once per session."""
    to_warn = await due(
        session,
        ChargingSession.status == SessionStatus.CHARGING,
        ChargingSession.warned_at.is_(None),
        Booking.end_at <= now + rules.warn_before,
        Booking.end_at > now,
    )
    warned = 0
    for charging in to_warn:
        async with transaction(session):
            changed = await session.execute(
                update(ChargingSession)
                .where(ChargingSession.id == charging.id, ChargingSession.warned_at.is_(None))
                .values(warned_at=now)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            outbox.enqueue(session, charging.user_id, "session_warning", session_id=charging.id)
            warned += 1
    return warned


async def window_ended(session: AsyncSession, now: datetime) -> list[ChargingSession]:
    """Sessions still charging after their window: to be stopped."""
    return await due(
        session, ChargingSession.status == SessionStatus.CHARGING, Booking.end_at <= now
    )


async def stale_starts(session: AsyncSession, before: datetime) -> list[ChargingSession]:
    """Starts pressed before ``before`` and still waiting for the device."""
    return await due(
        session,
        ChargingSession.status == SessionStatus.STARTING,
        ChargingSession.requested_at <= before,
    )


async def stale_stops(session: AsyncSession, before: datetime) -> list[ChargingSession]:
    """Stops taken in hand before ``before`` and still waiting for the device."""
    return await due(
        session,
        ChargingSession.status == SessionStatus.STOPPING,
        ChargingSession.stopping_since <= before,
    )


async def mark_no_shows(
    session: AsyncSession, now: datetime, money: MoneyRules = PAY_AT_SHOP
) -> int:
    """ACCEPTED bookings whose window ended without a session: NO_SHOW, once each
    (a prepaid hold: NO_SHOW_FEE_PERCENT kept for the merchant, the rest returned)."""
    starting = exists().where(
        ChargingSession.booking_id == Booking.id, ChargingSession.status.in_(ACTIVE_SESSION)
    )
    due = (
        await session.scalars(
            select(Booking.id)
            .where(Booking.status == BookingStatus.ACCEPTED, Booking.end_at <= now, ~starting)
            .limit(100)
        )
    ).all()
    marked = 0
    for booking_id in due:
        async with transaction(session):
            changed = await session.execute(
                update(Booking)
                .where(
                    Booking.id == booking_id,
                    Booking.status == BookingStatus.ACCEPTED,
                    ~starting,
                )
                .values(status=BookingStatus.NO_SHOW)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            booking = await session.get(Booking, booking_id, populate_existing=True)
            assert booking is not None
            audit.record(session, "booking", booking_id, "no_show", None, "accepted", "no_show")
            await settlement.no_show(session, booking, money)
            outbox.enqueue(session, booking.merchant_id, "booking_no_show", booking_id=booking_id)
            outbox.enqueue(session, booking.user_id, "booking_no_show_user", booking_id=booking_id)
            marked += 1
    return marked


async def open_sessions(session: AsyncSession) -> list[ChargingSession]:
    """Every session not yet closed, with its booking and charger (for reconciliation)."""
    return list(
        (
            await session.scalars(
                select(ChargingSession)
                .where(ChargingSession.status.in_(ACTIVE_SESSION))
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def recently_failed(session: AsyncSession, since: datetime) -> list[ChargingSession]:
    """Starts given up since ``since``: their plug may have switched on late."""
    return list(
        (
            await session.scalars(
                select(ChargingSession).where(
                    ChargingSession.status == SessionStatus.FAILED,
                    ChargingSession.ended_at >= since,
                )
            )
        ).all()
    )


async def charging_now(session: AsyncSession) -> list[ChargingSession]:
    return list(
        (
            await session.scalars(
                select(ChargingSession)
                .where(ChargingSession.status == SessionStatus.CHARGING)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def open_session_on_plug(
    session: AsyncSession, driver: str, plug_id: str
) -> ChargingSession | None:
    return (
        await session.scalars(
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


async def chargers_of_plug(session: AsyncSession, driver: str, plug_id: str) -> list[int]:
    return list(
        (
            await session.scalars(
                select(Charger.id).where(
                    Charger.plug_driver == driver,
                    Charger.plug_id == plug_id,
                    Charger.active.is_(True),
                )
            )
        ).all()
    )


async def running_page(session: AsyncSession, number: int, size: int) -> Page[ChargingSession]:
    """One page of the sessions charging now, the oldest start first."""
    statement = (
        select(ChargingSession)
        .where(ChargingSession.status == SessionStatus.CHARGING)
        .order_by(ChargingSession.started_at, ChargingSession.id)
        .execution_options(populate_existing=True)
    )
    return await page_of(session, statement, number, size)
