"""Reminders and deadlines (issue #16), in services/ on SQLite and PostgreSQL: the
merchant nudged before a request expires, the rider reminded 30 minutes before the
window and at its start, each once, and none that would come too late; "On my way"
tells the merchant."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Booking, OutboxMessage
from models.base import utcnow
from services import bookings
from services.errors import InvalidInput, NotAllowed
from tests.test_bookings_service import MERCHANT, RULES, STRANGER, USER_A, charger_id  # noqa: F401


async def _owed(open_db, kind: str) -> list[OutboxMessage]:
    async with open_db() as db:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        return list((await db.scalars(query)).all())


async def _request(open_db, charger, start, *, accept: bool = False) -> int:
    """A request for an hour from ``start`` (on a charger open 08:00-22:00 on weekdays:
    the window is made as if asked when it fits, ``now`` before it)."""
    async with open_db() as db:
        booking = await bookings.request(
            db,
            user_id=USER_A,
            charger_id=charger,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=1),
            rules=RULES,
            now=start - timedelta(hours=2),
        )
        if accept:
            await bookings.accept(
                db, booking_id=booking.id, merchant_id=MERCHANT, now=start - timedelta(hours=2)
            )
    return booking.id


async def _remind(open_db, now) -> int:
    async with open_db() as db:
        return await bookings.remind_due(db, now)


async def _open_hours_everywhere(open_db, charger) -> None:
    from models import Charger

    async with open_db() as db:
        row = await db.get(Charger, charger)
        row.hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
        await db.commit()


async def test_the_merchant_is_nudged_once_before_the_request_expires(
    open_db,
    charger_id,  # noqa: F811
) -> None:
    await _open_hours_everywhere(open_db, charger_id)
    start = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    booking_id = await _request(open_db, charger_id, start)
    async with open_db() as db:
        respond_by = (await db.get(Booking, booking_id)).respond_by
    assert await _remind(open_db, respond_by - timedelta(minutes=6)) == 0  # not yet
    assert await _remind(open_db, respond_by - timedelta(minutes=4)) == 1
    assert await _remind(open_db, respond_by - timedelta(minutes=3)) == 0  # once
    (nudge,) = await _owed(open_db, "booking_nudge")
    assert (nudge.chat_id, nudge.payload) == (MERCHANT, {"booking_id": booking_id})


async def test_no_nudge_once_answered_or_expired(open_db, charger_id) -> None:  # noqa: F811
    await _open_hours_everywhere(open_db, charger_id)
    start = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    answered = await _request(open_db, charger_id, start, accept=True)
    async with open_db() as db:
        respond_by = (await db.get(Booking, answered)).respond_by
    assert await _remind(open_db, respond_by - timedelta(minutes=4)) == 0
    assert await _remind(open_db, respond_by + timedelta(minutes=1)) == 0
    assert await _owed(open_db, "booking_nudge") == []


async def test_the_rider_is_reminded_before_and_at_the_start_once_each(
    open_db,
    charger_id,  # noqa: F811
) -> None:
    await _open_hours_everywhere(open_db, charger_id)
    # accepted now (the real clock), for a window an hour from now
    start = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    booking_id = await _request(open_db, charger_id, start, accept=True)
    assert await _remind(open_db, start - timedelta(minutes=31)) == 0
    assert await _remind(open_db, start - timedelta(minutes=29)) == 1
    assert await _remind(open_db, start - timedelta(minutes=20)) == 0
    assert await _remind(open_db, start) == 1
    assert await _remind(open_db, start + timedelta(minutes=1)) == 0
    owed = await _owed(open_db, "booking_reminder")
    assert [(m.chat_id, m.payload["stage"]) for m in owed] == [
        (USER_A, "before"),
        (USER_A, "start"),
    ]
    assert {m.payload["booking_id"] for m in owed} == {booking_id}


async def test_no_reminder_that_would_come_too_late(open_db, charger_id) -> None:  # noqa: F811
    """Down over the whole half hour and past the start: no "in 30 minutes" at the
    start, and no "starts now" ten minutes after it."""
    await _open_hours_everywhere(open_db, charger_id)
    start = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    await _request(open_db, charger_id, start, accept=True)
    assert await _remind(open_db, start + timedelta(minutes=11)) == 0
    assert await _owed(open_db, "booking_reminder") == []


async def test_on_my_way_tells_the_merchant(open_db, charger_id) -> None:  # noqa: F811
    await _open_hours_everywhere(open_db, charger_id)
    start = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    booking_id = await _request(open_db, charger_id, start, accept=True)
    async with open_db() as db:
        with pytest.raises(NotAllowed):
            await bookings.on_the_way(db, booking_id=booking_id, user_id=STRANGER)
        await bookings.on_the_way(db, booking_id=booking_id, user_id=USER_A)
    (told,) = await _owed(open_db, "booking_on_the_way")
    assert told.chat_id == MERCHANT
    async with open_db() as db:
        await bookings.cancel(db, booking_id=booking_id, user_id=USER_A)
        with pytest.raises(InvalidInput):  # a stale button changes nothing
            await bookings.on_the_way(db, booking_id=booking_id, user_id=USER_A)
    assert len(await _owed(open_db, "booking_on_the_way")) == 1


async def test_quick_choices_are_only_windows_the_rules_accept(
    open_db,
    charger_id,  # noqa: F811
) -> None:
    """ "Today 18:00-20:00" is not offered when the charger is closed then (issue #16):
    the quick choices are checked like a request."""
    from tests.test_bookings_service import NOW, at

    windows = [
        (NOW + timedelta(minutes=1), NOW + timedelta(hours=1, minutes=1)),  # open
        (at(28, 18), at(28, 20)),  # open
        (at(29, 4), at(29, 5)),  # Sunday 04:00: closed
        (at(28, 21, 30), at(28, 22, 30)),  # runs past closing
        (at(28, 7), at(28, 8)),  # past
    ]
    async with open_db() as db:
        fits = await bookings.acceptable(
            db, user_id=USER_A, charger_id=charger_id, windows=windows, rules=RULES, now=NOW
        )
    assert fits == [True, True, False, False, False]
    # the evening taken by the rider's own request: not offered again
    async with open_db() as db:
        await bookings.request(
            db,
            user_id=USER_A,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=at(28, 18),
            end=at(28, 20),
            rules=RULES,
            now=NOW,
        )
        fits = await bookings.acceptable(
            db, user_id=USER_A, charger_id=charger_id, windows=windows[:2], rules=RULES, now=NOW
        )
    assert fits == [True, False]


async def test_quick_choices_agree_with_the_request_rules_window_by_window(
    open_db,
    charger_id,  # noqa: F811
) -> None:
    """``acceptable`` reads the bookings of all the windows at once (issue #17): for
    each window it answers as ``quote`` (the rules of a request) does, one by one."""
    import random

    from services.errors import DomainError
    from tests.test_bookings_service import NOW, at

    async with open_db() as db:  # one window taken by another rider, one by this one
        other = await bookings.request(
            db,
            user_id=STRANGER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=at(28, 12),
            end=at(28, 13),
            rules=RULES,
            now=NOW,
        )
        await bookings.accept(db, booking_id=other.id, merchant_id=MERCHANT, now=NOW)
        await bookings.request(
            db,
            user_id=USER_A,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=at(28, 15),
            end=at(28, 16),
            rules=RULES,
            now=NOW,
        )
    rng = random.Random(17)
    windows = []
    for _ in range(60):
        start = NOW + timedelta(minutes=15 * rng.randint(-8, 200))
        windows.append((start, start + timedelta(minutes=15 * rng.randint(-1, 40))))
    async with open_db() as db:
        fits = await bookings.acceptable(
            db, user_id=USER_A, charger_id=charger_id, windows=windows, rules=RULES, now=NOW
        )
        one_by_one = []
        for start, end in windows:
            try:
                await bookings.quote(
                    db,
                    user_id=USER_A,
                    charger_id=charger_id,
                    start=start,
                    end=end,
                    rules=RULES,
                    now=NOW,
                )
            except DomainError:
                one_by_one.append(False)
            else:
                one_by_one.append(True)
    assert fits == one_by_one
    assert True in fits and False in fits  # both kinds of answer were tried
