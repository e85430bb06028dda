"""Extend a running session (issue #15): +30 min or +1 h on the charging card, when
the time after the window is free, through the booking rules (no overlap, the hours,
at most MAX_BOOKING in all) in one transaction that locks the charger's row, like an
accept. In prepaid mode what runs past the prepayment is owed at the order (the
settlement's top-up), as for any session that costs more than its estimate.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from models import Booking, Charger, ChargingSession, SessionStatus
from models.base import utcnow
from services import audit, charging
from services.bookings import MAX_BOOKING, BookingRules, busy_intervals, estimate_minor
from services.dto import ChargeInfo
from services.errors import InvalidInput, NotAllowed
from services.hours import Hours
from services.tx import Db, lock_rows, read, transaction
from services.windows import fits_hours

EXTENSIONS = (30, 60)  # minutes


@dataclass(frozen=True)
class ExtendOption:
    minutes: int
    end: datetime  # the window's new end
    price_minor: int | None  # what the extension adds (per kWh: unknown)
    currency: str


async def _fits(
    db: Db, booking: Booking, hours: Hours, new_end: datetime, rules: BookingRules
) -> bool:
    if new_end - booking.start_at > MAX_BOOKING:
        return False
    if not fits_hours(hours, booking.end_at, new_end, rules.zone):
        return False
    busy = await busy_intervals(db, booking.charger_id, booking.end_at, new_end)
    return not [b for b in busy if b != (booking.start_at, booking.end_at)]


def _option(booking: Booking, minutes: int) -> ExtendOption:
    end = booking.end_at + timedelta(minutes=minutes)
    price = estimate_minor(booking.price_minor, booking.price_unit, booking.end_at, end)
    return ExtendOption(minutes, end, price, booking.currency)


async def options(db: Db, session_id: int, rules: BookingRules) -> tuple[ExtendOption, ...]:
    """The extensions its charging card offers now (none unless it is charging)."""
    async with read(db):
        charge = await charging.get(db, session_id)
        if charge.status != SessionStatus.CHARGING:
            return ()
        booking = charge.booking
        hours = booking.charger.hours  # joined with the booking
        # the bookings after this one, read once for the longest extension
        later = [
            b
            for b in await busy_intervals(
                db,
                booking.charger_id,
                booking.end_at,
                booking.end_at + timedelta(minutes=max(EXTENSIONS)),
            )
            if b != (booking.start_at, booking.end_at)
        ]
        found = []
        for minutes in EXTENSIONS:
            option = _option(booking, minutes)
            if (
                option.end - booking.start_at <= MAX_BOOKING
                and fits_hours(hours, booking.end_at, option.end, rules.zone)
                and not any(s < option.end and e > booking.end_at for s, e in later)
            ):
                found.append(option)
        return tuple(found)


async def extend(
    db: Db,
    *,
    session_id: int,
    user_id: int,
    minutes: int,
    rules: BookingRules,
    now: datetime | None = None,
) -> tuple[ChargeInfo, ExtendOption]:
    """The session's window made longer, or a refusal that says why."""
    now = now or utcnow()
    if minutes not in EXTENSIONS:
        raise InvalidInput("walkup.err_extend_choice")
    async with transaction(db):
        found = await db.get(ChargingSession, session_id, populate_existing=True)
        if found is None or found.user_id != user_id:
            raise NotAllowed("err.not_your_session")
        await lock_rows(
            db, select(Charger.id).where(Charger.id == found.charger_id).with_for_update()
        )
        charge = await charging.get(db, session_id)  # as it is now that we hold the lock
        booking = charge.booking
        await db.refresh(booking)
        if charge.status != SessionStatus.CHARGING or booking.end_at <= now:
            raise InvalidInput("walkup.err_extend_not_running")
        charger = await db.get(Charger, charge.charger_id)
        assert charger is not None
        option = _option(booking, minutes)
        if not await _fits(db, booking, charger.hours, option.end, rules):
            raise InvalidInput("walkup.err_extend_taken", end=booking.end_at)
        await db.execute(
            update(Booking)
            .where(Booking.id == booking.id)
            .values(
                end_at=option.end,
                estimate_minor=estimate_minor(
                    booking.price_minor, booking.price_unit, booking.start_at, option.end
                ),
            )
        )
        # the "ends in 5 minutes" warning is owed again for the new end
        await db.execute(
            update(ChargingSession).where(ChargingSession.id == charge.id).values(warned_at=None)
        )
        audit.record(db, "booking", booking.id, "extend", user_id, None, f"+{minutes}")
        await db.refresh(booking)
        info = await charging.charge_info(db, session_id)
    return info, option
