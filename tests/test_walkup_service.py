"""Walk-up charging, stop when full and extend (issue #15) in the services, on SQLite
and PostgreSQL: the Charge now offer and its caps, auto and manual acceptance, the
refusals, two riders pressing at once, the full watch (also across a restart) and
Extend. The flows over the local Bot API server and mosquitto are in
tests/test_flow_walkup.py."""

# ruff: noqa: F811  (the fixtures of test_charging_service, imported by name)

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from hardware_bridge.port import DeviceRef, PowerReading
from models import Booking, BookingStatus, Charger, ChargingSession, EndReason, Listing
from models.base import utcnow
from services import bookings, charging, walkup
from services.bookings import BookingRules
from services.charging_control import ChargingControl
from services.dto import WalkupOffer
from services.errors import DomainError, InvalidInput, NotAllowed
from services.walkup import UNTIL_FULL
from tests.support.money import PREPAID, open_invoice, pay
from tests.test_charging_service import (
    BOOKING_RULES,
    MERCHANT,
    MINUTE,
    RULES,
    USER_A,
    USER_B,
    ZONE,
    FakeSwitch,
    World,
    attempt,
    book,
    control,  # noqa: F401  (fixture)
    load,
    notes,
    orders,
    power,  # noqa: F401  (fixture)
    settle,
    world,  # noqa: F401  (fixture)
)

# a fixed morning: the world's chargers are open all day
T = datetime(2026, 12, 7, 10, 0, tzinfo=ZONE)


async def set_charger(open_db, charger_id: int, **values: object) -> None:
    async with open_db() as db:
        await db.execute(update(Charger).where(Charger.id == charger_id).values(**values))
        await db.commit()


async def scan(open_db, world: World, user: int = USER_A, now: datetime = T, n: int = 0):
    async with open_db() as db:
        return await walkup.scan(
            db,
            token=world.tokens[n],
            user_id=user,
            rules=RULES,
            booking_rules=BOOKING_RULES,
            now=now,
        )


async def take(open_db, world: World, minutes: int, user: int = USER_A, now=T, n: int = 0):
    async with open_db() as db:
        return await walkup.take(
            db,
            user_id=user,
            charger_id=world.chargers[n],
            minutes=minutes,
            rules=BOOKING_RULES,
            now=now,
        )


async def count_bookings(open_db) -> int:
    async with open_db() as db:
        return int(await db.scalar(select(func.count()).select_from(Booking)) or 0)


# -- the offer ---------------------------------------------------------------------------


async def test_offer_is_capped_by_the_next_booking_and_the_hours(open_db, world) -> None:
    # someone's accepted booking at 11:15: 30 min and 1 h fit, 2 h does not
    await book(open_db, world.chargers[0], T + 75 * MINUTE, T + 120 * MINUTE, USER_B)
    offer = await scan(open_db, world)
    assert isinstance(offer, WalkupOffer) and offer.auto
    assert offer.free_until == T + 75 * MINUTE
    assert [(m, end) for m, end, _ in offer.choices] == [
        (30, T + 30 * MINUTE),
        (60, T + 60 * MINUTE),
    ]
    assert [e for _, _, e in offer.choices] == [125, 250]  # 2.50 CNY/h
    # a plug that meters power adds "until full", ending at the cap
    await set_charger(open_db, world.chargers[0], meters_power=True)
    offer = await scan(open_db, world)
    assert isinstance(offer, WalkupOffer)
    assert offer.choices[-1][:2] == (UNTIL_FULL, T + 75 * MINUTE)
    # the closing time caps it too: closes at 10:40 today
    hours = {str(d): [["08:00", "10:40"]] for d in range(7)}
    await set_charger(open_db, world.chargers[1], hours=hours)
    offer = await scan(open_db, world, n=1)
    assert isinstance(offer, WalkupOffer) and [m for m, _, _ in offer.choices] == [30]
    # under 30 minutes free (closing at 10:20, or a booking at 10:25): no offer, and the
    # scan says why as before
    for n, now in ((1, T + 20 * MINUTE), (0, T + 50 * MINUTE)):
        refused = await attempt(scan(open_db, world, USER_A, now=now, n=n))
        assert isinstance(refused, DomainError) and refused.key == "err.scan_no_booking"


async def test_no_offer_while_busy_paused_or_to_its_merchant(open_db, world) -> None:
    await book(open_db, world.chargers[0], T - 30 * MINUTE, T + 30 * MINUTE, USER_B)
    refused = await attempt(scan(open_db, world))
    assert isinstance(refused, DomainError) and refused.key == "err.scan_no_booking"
    refused = await attempt(scan(open_db, world, MERCHANT, n=1))
    assert isinstance(refused, DomainError) and refused.key == "err.scan_no_booking"
    async with open_db() as db:
        await db.execute(update(Listing).values(paused=True))
        await db.commit()
    refused = await attempt(scan(open_db, world, n=1))
    assert isinstance(refused, DomainError) and refused.key == "err.scan_no_booking"


async def test_a_request_still_open_is_told_not_offered_over(open_db, world) -> None:
    await book(open_db, world.chargers[0], T + 10 * MINUTE, T + 40 * MINUTE, accept=False)
    refused = await attempt(scan(open_db, world))
    assert isinstance(refused, InvalidInput) and refused.key == "err.scan_booking_status"


# -- taking it ---------------------------------------------------------------------------


async def test_auto_accepts_at_once_and_manual_asks_with_a_short_deadline(open_db, world) -> None:
    made = await take(open_db, world, 60)
    assert made.status == BookingStatus.ACCEPTED and made.walkup and not made.until_full
    assert (made.start_at, made.end_at) == (T, T + 60 * MINUTE)
    assert await notes(open_db, "booking_request") == []
    # the scan now finds the booking: Start
    found = await scan(open_db, world)
    assert not isinstance(found, WalkupOffer) and found.booking.id == made.id

    await set_charger(open_db, world.chargers[1], walkup_auto=False)
    offer = await scan(open_db, world, USER_B, n=1)
    assert isinstance(offer, WalkupOffer) and not offer.auto
    asked = await take(open_db, world, 30, USER_B, n=1)
    assert asked.status == BookingStatus.REQUESTED
    assert asked.respond_by == T + timedelta(seconds=BOOKING_RULES.walkup_response_seconds)
    assert [chat for chat, _ in await notes(open_db, "booking_request")] == [MERCHANT]
    # nobody answers within the two minutes: expired, the rider told
    async with open_db() as db:
        assert await bookings.expire_due(db, now=T + 121 * timedelta(seconds=1)) == 1
    assert (await load(open_db, Booking, asked.id)).status == BookingStatus.EXPIRED
    assert [chat for chat, _ in await notes(open_db, "booking_expired")] == [USER_B]


async def test_refusals_change_nothing(open_db, world) -> None:
    await book(open_db, world.chargers[0], T + 75 * MINUTE, T + 120 * MINUTE, USER_B)
    before = await count_bookings(open_db)
    cases = [
        (45, USER_A, "walkup.err_choice"),  # a forged duration
        (UNTIL_FULL, USER_A, "walkup.err_no_meter"),  # its plug does not meter power
        (120, USER_A, "walkup.err_too_long"),  # past the next booking
    ]
    for minutes, user, key in cases:
        refused = await attempt(take(open_db, world, minutes, user))
        assert isinstance(refused, InvalidInput) and refused.key == key, (minutes, refused)
    refused = await attempt(take(open_db, world, 30, MERCHANT))
    assert isinstance(refused, NotAllowed) and refused.key == "err.own_charger"
    assert await count_bookings(open_db) == before
    # taken: the next rider is told so
    await take(open_db, world, 30)
    refused = await attempt(take(open_db, world, 30, USER_B))
    assert isinstance(refused, InvalidInput) and refused.key == "walkup.err_taken"
    # one walk-up not started at a time (each holds a charger)
    refused = await attempt(take(open_db, world, 30, USER_A, n=1))
    assert isinstance(refused, InvalidInput) and refused.key == "walkup.err_open"
    assert await count_bookings(open_db) == before + 1


async def test_two_riders_pressing_at_once_one_wins(open_db, world) -> None:
    """Both scanned the free charger and press Charge now at the same moment: the
    charger's row lock lets one book it; the other is told it was just taken."""
    now = utcnow()
    for n in (0, 1):
        results = await asyncio.gather(
            attempt(take(open_db, world, 60, USER_A, now=now, n=n)),
            attempt(take(open_db, world, 30, USER_B, now=now, n=n)),
        )
        won = [r for r in results if not isinstance(r, DomainError)]
        lost = [r for r in results if isinstance(r, DomainError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].key == "walkup.err_taken"
        async with open_db() as db:
            accepted = await db.scalar(
                select(func.count())
                .select_from(Booking)
                .where(
                    Booking.charger_id == world.chargers[n],
                    Booking.status == BookingStatus.ACCEPTED,
                )
            )
        assert accepted == 1
        # one walk-up not started at a time: the winner cancels it before the next round
        async with open_db() as db:
            await bookings.cancel(db, booking_id=won[0].id, user_id=won[0].user_id, now=now)


# -- stop when full ------------------------------------------------------------------------


async def started_until_full(open_db, world, control: ChargingControl) -> tuple[int, int]:
    await set_charger(open_db, world.chargers[0], meters_power=True)
    made = await take(open_db, world, UNTIL_FULL, now=utcnow())
    assert made.until_full and made.end_at - made.start_at == walkup.UNTIL_FULL_CAP
    started = await control.start(made.id, USER_A)
    return made.id, started.id


def reading(world: World, watts: float, at: datetime) -> PowerReading:
    return PowerReading(world.devices[0], at, watts=watts)


async def test_until_full_ends_when_the_power_stays_low(
    open_db, world, power: FakeSwitch, control: ChargingControl
) -> None:
    _, session_id = await started_until_full(open_db, world, control)
    now = utcnow()
    # drawing nothing before it ever drew power: a device not plugged in is not full
    power.emit(reading(world, 0.0, now))
    await settle(control)
    power.emit(reading(world, 0.0, now + 5 * MINUTE))
    await settle(control)
    assert (await load(open_db, ChargingSession, session_id)).low_power_since is None
    # charging at 60 W, then a trickle: under 10 W for 3 minutes ends it as full
    power.emit(reading(world, 60.0, now + 6 * MINUTE))
    await settle(control)
    power.emit(reading(world, 4.0, now + 7 * MINUTE))
    await settle(control)
    charge = await load(open_db, ChargingSession, session_id)
    assert charge.drew_power and charge.low_power_since == now + 7 * MINUTE
    power.emit(reading(world, 3.0, now + 9 * MINUTE))  # two minutes: not yet
    await settle(control)
    assert not await orders(open_db)
    power.emit(reading(world, 2.0, now + 10 * MINUTE))
    await settle(control)
    [order] = await orders(open_db)
    assert order.end_reason == EndReason.FULL.value and order.ended_at == now + 10 * MINUTE
    assert power.sent("off") == [None]


async def test_power_rising_again_resets_the_watch(
    open_db, world, power: FakeSwitch, control: ChargingControl
) -> None:
    _, session_id = await started_until_full(open_db, world, control)
    now = utcnow()
    for minute, watts in ((0, 50.0), (1, 5.0), (3, 40.0), (4, 5.0), (6, 5.0)):
        power.emit(reading(world, watts, now + minute * MINUTE))
        await settle(control)
    assert not await orders(open_db)  # low since minute 4 only
    assert (await load(open_db, ChargingSession, session_id)).low_power_since == now + 4 * MINUTE


async def test_the_full_watch_survives_a_restart(open_db, world, power: FakeSwitch) -> None:
    first = ChargingControl(open_db, power, RULES, confirm_timeout=1.0)
    await started_until_full(open_db, world, first)
    now = utcnow()
    power.emit(reading(world, 80.0, now))
    await settle(first)
    power.emit(reading(world, 1.0, now + MINUTE))
    await settle(first)
    await first.close()
    power._callbacks.clear()  # the old process is gone
    second = ChargingControl(open_db, power, RULES, confirm_timeout=1.0)
    try:
        await second.tick()  # it learns the session runs on this plug
        await settle(second)
        power.emit(reading(world, 1.0, now + 4 * MINUTE))
        await settle(second)
        [order] = await orders(open_db)
        assert order.end_reason == "full" and order.ended_at == now + 4 * MINUTE
    finally:
        await second.close()


async def test_a_power_reading_marks_the_plug_as_metering(
    open_db, world, power: FakeSwitch, control: ChargingControl
) -> None:
    assert not (await load(open_db, Charger, world.chargers[1])).meters_power
    power.emit(PowerReading(world.devices[1], utcnow(), watts=0.0))
    await settle(control)
    assert (await load(open_db, Charger, world.chargers[1])).meters_power
    assert not (await load(open_db, Charger, world.chargers[0])).meters_power


async def test_plugs_heard_metering_together_are_marked_in_one_write(
    open_db, world, power: FakeSwitch, control: ChargingControl, engine
) -> None:
    """A fleet reporting after a restart (issue #17: 10,000 plugs in one TelePeriod made
    one write each and swamped the loop): the plugs heard meanwhile, one statement."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("UPDATE CHARGERS"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        for device in world.devices:
            power.emit(PowerReading(device, utcnow(), watts=0.0))
        for ghost in range(50):  # plugs of no charger of ours: nothing to mark, no harm
            power.emit(PowerReading(DeviceRef("tasmota", f"ghost_{ghost}"), utcnow(), watts=0.0))
        await settle(control)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(seen) == len({d.driver for d in [*world.devices, DeviceRef("tasmota", "x")]})
    for charger_id in world.chargers:
        assert (await load(open_db, Charger, charger_id)).meters_power


# -- extend ------------------------------------------------------------------------------


async def test_extend_moves_the_end_and_the_failsafe(
    open_db, world, power: FakeSwitch, control: ChargingControl
) -> None:
    now = utcnow()
    made = await take(open_db, world, 30, now=now)
    started = await control.start(made.id, USER_A)
    # someone booked from 70 minutes on: +30 fits, +1 h does not
    await book(open_db, world.chargers[0], now + 70 * MINUTE, now + 100 * MINUTE, USER_B)
    options = await control.extend_options(started.id, BOOKING_RULES)
    assert [(o.minutes, o.end, o.price_minor) for o in options] == [(30, now + 60 * MINUTE, 125)]
    refused = await attempt(control.extend(started.id, USER_A, 60, BOOKING_RULES))
    assert isinstance(refused, InvalidInput) and refused.key == "walkup.err_extend_taken"
    refused = await attempt(control.extend(started.id, USER_B, 30, BOOKING_RULES))
    assert isinstance(refused, NotAllowed)
    failsafes_before = len(power.sent("on"))
    info, option = await control.extend(started.id, USER_A, 30, BOOKING_RULES)
    assert info.booking.end_at == now + 60 * MINUTE == option.end
    booking = await load(open_db, Booking, made.id)
    assert booking.end_at == now + 60 * MINUTE and booking.estimate_minor == 250
    # the plug's own failsafe moved to the new end (plus the slack)
    [failsafe] = power.sent("on")[failsafes_before:]
    assert failsafe is not None and failsafe > 55 * 60
    # nothing more fits now
    assert await control.extend_options(started.id, BOOKING_RULES) == ()


async def test_extend_refused_once_stopped(
    open_db, world, power: FakeSwitch, control: ChargingControl
) -> None:
    made = await take(open_db, world, 30, now=utcnow())
    started = await control.start(made.id, USER_A)
    await control.stop(started.id, actor=USER_A)
    refused = await attempt(control.extend(started.id, USER_A, 30, BOOKING_RULES))
    assert isinstance(refused, InvalidInput) and refused.key == "walkup.err_extend_not_running"
    async with open_db() as db:
        assert (await charging.get(db, started.id)).status.value == "completed"


# -- prepaid mode: the same checkout as any booking ----------------------------------------


@pytest.mark.parametrize("auto", [True, False])
async def test_prepaid_walk_up_is_accepted_or_asked_once_paid(open_db, world, auto) -> None:
    rules = BookingRules(zone=ZONE, response_minutes=15, money=PREPAID)
    await set_charger(open_db, world.chargers[0], walkup_auto=auto)
    async with open_db() as db:
        made = await walkup.take(
            db, user_id=USER_A, charger_id=world.chargers[0], minutes=60, rules=rules, now=T
        )
    assert made.status == BookingStatus.UNPAID
    invoice = await open_invoice(open_db, made.id)
    assert invoice is not None and [c for c, _ in await notes(open_db, "invoice")] == [USER_A]
    outcome = await pay(open_db, invoice, now=T + MINUTE, money=PREPAID)
    assert outcome.outcome == "booking_paid"
    booking = await load(open_db, Booking, made.id)
    if auto:  # accepted once paid: the rider gets Start, the merchant is not asked
        assert booking.status == BookingStatus.ACCEPTED and booking.prepaid_minor == 250
        assert [c for c, _ in await notes(open_db, "booking_accepted")] == [USER_A]
        assert await notes(open_db, "booking_request") == []
    else:  # asked of the merchant, with the short answer time from the payment on
        assert booking.status == BookingStatus.REQUESTED
        assert booking.respond_by == T + MINUTE + timedelta(seconds=120)
        assert [c for c, _ in await notes(open_db, "booking_request")] == [MERCHANT]


async def test_a_walk_up_not_started_in_time_frees_the_charger(open_db, world) -> None:
    made = await take(open_db, world, 120)
    # the rider may cancel it until charging starts (a booking of now, all the same)
    async with open_db() as db:
        assert await charging.mark_no_shows(db, T + 9 * MINUTE) == 0
        assert await charging.mark_no_shows(db, T + 10 * MINUTE) == 1
    assert (await load(open_db, Booking, made.id)).status == BookingStatus.NO_SHOW
    # free again for the next rider
    offer = await scan(open_db, world, USER_B, now=T + 11 * MINUTE)
    assert isinstance(offer, WalkupOffer)
    again = await take(open_db, world, 30, USER_B, now=T + 11 * MINUTE)
    async with open_db() as db:
        cancelled = await bookings.cancel(
            db, booking_id=again.id, user_id=USER_B, now=T + 12 * MINUTE
        )
    assert cancelled.status == BookingStatus.CANCELLED


async def test_with_shared_readings_a_rise_heard_elsewhere_keeps_it_going(
    open_db, world, power: FakeSwitch
) -> None:
    """Two instances each hear some of a plug's readings (MQTT_SHARE_GROUP): a rise
    heard by one resets the watch for the other, which does not stop it as full on
    its own old copy."""
    other_power = FakeSwitch()
    first = ChargingControl(open_db, power, RULES, confirm_timeout=1.0, shared_readings=True)
    second = ChargingControl(open_db, other_power, RULES, confirm_timeout=1.0, shared_readings=True)
    try:
        await started_until_full(open_db, world, first)
        await second.tick()  # it learns the session runs on this plug
        now = utcnow()
        power.emit(reading(world, 60.0, now))
        await settle(first)
        power.emit(reading(world, 4.0, now + MINUTE))  # low since minute 1, on the first
        await settle(first)
        other_power.emit(reading(world, 50.0, now + 2 * MINUTE))  # risen, on the second
        await settle(second)
        power.emit(reading(world, 3.0, now + 4 * MINUTE))  # low again since minute 4
        await settle(first)
        assert not await orders(open_db)
        power.emit(reading(world, 3.0, now + 7 * MINUTE))
        await settle(first)
        [order] = await orders(open_db)
        assert order.end_reason == "full" and order.ended_at == now + 7 * MINUTE
    finally:
        await first.close()
        await second.close()
