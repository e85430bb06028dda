"""Booking rules in services/, on SQLite and PostgreSQL."""

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select

from models import AuditEntry, Booking, BookingStatus, Charger, Listing, OutboxMessage, User
from services import bookings, listings, search
from services.bookings import BookingRules
from services.errors import DomainError, InvalidInput, NotAllowed
from tests import factories

ZONE = ZoneInfo("Asia/Shanghai")
RULES = BookingRules(zone=ZONE, response_minutes=15)
MERCHANT, USER_A, USER_B, STRANGER = 1001, 2001, 2002, 3003
# a Saturday morning in Shanghai
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=ZONE)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ZONE)


@pytest.fixture
async def charger_id(open_db) -> int:
    async with open_db() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in (MERCHANT, USER_A, USER_B, STRANGER)])
        await db.commit()
    draft = factories.listing(chargers=1)
    draft.chargers[0].device_kinds = ["e_bike", "phone_laptop"]
    draft.chargers[0].hours = {str(d): [["08:00", "22:00"]] for d in range(5)} | {
        "5": [["08:00", "22:00"], ["23:00", "24:00"]],
        "6": [["00:00", "03:00"]],
    }
    async with open_db() as db:
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=-1
        )
        await listings.approve(db, revision_id=revision.id, admin_id=9, moderation_chat_id=-1)
        return (await db.scalars(select(Charger.id))).one()


async def _request(open_db, charger_id, user=USER_A, start=None, end=None, kind="e_bike"):
    async with open_db() as db:
        return await bookings.request(
            db,
            user_id=user,
            charger_id=charger_id,
            device_kind=kind,
            device_model="Yadea G5",
            start=start or at(28, 18),
            end=end or at(28, 20),
            rules=RULES,
            now=NOW,
        )


async def test_request_copies_the_tariff_and_tells_the_merchant(open_db, charger_id) -> None:
    booking = await _request(open_db, charger_id)
    assert booking.status == BookingStatus.REQUESTED
    assert (booking.price_minor, booking.price_unit, booking.estimate_minor) == (250, "hour", 500)
    # a quarter of the 9 hours' lead time, not 15 minutes (issue #16)
    assert booking.respond_by == NOW + timedelta(hours=2, minutes=15)
    async with open_db() as db:  # a later price change does not touch the booking
        charger = await db.get(Charger, charger_id)
        charger.price_minor = 999
        await db.commit()
        stored = await db.get(Booking, booking.id)
        assert stored.price_minor == 250
        kinds = (
            await db.scalars(select(OutboxMessage.kind).where(OutboxMessage.chat_id == MERCHANT))
        ).all()
        assert "booking_request" in kinds


@pytest.mark.parametrize(
    ("start", "end", "key"),
    [
        (at(28, 20), at(28, 18), "err.window_order"),
        (at(30, 7), at(30, 8, 30), "err.window_hours"),  # Monday opens at 08:00
        (at(27, 18), at(27, 19), "err.window_past"),
        (at(28, 18), at(28, 18, 5), "err.window_length"),
        (at(28, 21), at(28, 23), "err.window_hours"),  # closed 22:00–23:00
    ],
)
async def test_bad_windows_are_refused(open_db, charger_id, start, end, key) -> None:
    with pytest.raises(InvalidInput) as error:
        await _request(open_db, charger_id, start=start, end=end)
    assert error.value.key == key
    async with open_db() as db:
        assert await db.scalar(select(func.count()).select_from(Booking)) == 0


async def test_a_window_across_midnight_fits_joined_hours(open_db, charger_id) -> None:
    # Saturday 23:00–24:00 and Sunday 00:00–03:00 join into one open stretch
    booking = await _request(open_db, charger_id, start=at(28, 23, 30), end=at(29, 1, 30))
    assert booking.estimate_minor == 500
    with pytest.raises(InvalidInput):  # Sunday 03:00 is the end of it
        await _request(open_db, charger_id, start=at(29, 2), end=at(29, 4))


async def test_a_kind_the_charger_does_not_fit_and_own_charger(open_db, charger_id) -> None:
    with pytest.raises(InvalidInput):
        await _request(open_db, charger_id, kind="ev_car")
    with pytest.raises(NotAllowed):
        await _request(open_db, charger_id, user=MERCHANT)


async def test_two_overlapping_requests_only_one_can_be_accepted(open_db, charger_id) -> None:
    first = await _request(open_db, charger_id, USER_A, at(28, 18), at(28, 20))
    second = await _request(open_db, charger_id, USER_B, at(28, 19), at(28, 21))

    async def accept(booking_id: int):
        async with open_db() as db:
            try:
                return await bookings.accept(
                    db, booking_id=booking_id, merchant_id=MERCHANT, now=NOW
                )
            except DomainError as error:
                return error

    results = await asyncio.gather(accept(first.id), accept(second.id))
    accepted = [r for r in results if not isinstance(r, DomainError)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(accepted) == 1 and len(refused) == 1
    assert refused[0].key == "err.booking_overlap"
    # the free windows of the day are offered when a taken window is requested
    with pytest.raises(InvalidInput) as error:
        await _request(open_db, charger_id, STRANGER, at(28, 19), at(28, 20))
    assert error.value.key == "err.window_taken" and error.value.params["free"]


async def test_the_same_accept_pressed_twice_acts_once(open_db, charger_id) -> None:
    booking = await _request(open_db, charger_id)

    async def accept():
        async with open_db() as db:
            try:
                return await bookings.accept(
                    db, booking_id=booking.id, merchant_id=MERCHANT, now=NOW
                )
            except DomainError as error:
                return error

    results = await asyncio.gather(accept(), accept())
    assert sum(not isinstance(r, DomainError) for r in results) == 1
    async with open_db() as db:
        notes = await db.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "booking_accepted")
        )
        assert notes == 1


async def test_only_the_owner_decides_and_rejected_stays_rejected(open_db, charger_id) -> None:
    booking = await _request(open_db, charger_id)
    async with open_db() as db:
        with pytest.raises(NotAllowed):
            await bookings.accept(db, booking_id=booking.id, merchant_id=STRANGER, now=NOW)
        await bookings.reject(
            db, booking_id=booking.id, merchant_id=MERCHANT, reason="preset:no_spot"
        )
        with pytest.raises(InvalidInput):
            await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT, now=NOW)
        stored = await bookings.get(db, booking.id)
        assert stored.status == BookingStatus.REJECTED and stored.reason == "preset:no_spot"


async def test_expiry_happens_once_even_when_late(open_db, charger_id) -> None:
    booking = await _request(open_db, charger_id)
    assert await _expire(open_db, NOW + timedelta(minutes=14)) == 0
    # the bot was down at the due time: expiry still happens when it runs again
    later = NOW + timedelta(hours=3)
    counts = await asyncio.gather(*(_expire(open_db, later) for _ in range(3)))
    assert sum(counts) == 1
    async with open_db() as db:
        stored = await bookings.get(db, booking.id)
        assert stored.status == BookingStatus.EXPIRED
        with pytest.raises(InvalidInput):
            await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT, now=later)
        audit = await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.entity == "booking", AuditEntry.action == "expired")
        )
        assert audit == 1


async def _expire(open_db, now) -> int:
    async with open_db() as db:
        return await bookings.expire_due(db, now)


async def test_cancel_before_start(open_db, charger_id) -> None:
    booking = await _request(open_db, charger_id)
    async with open_db() as db:
        with pytest.raises(NotAllowed):
            await bookings.cancel(db, booking_id=booking.id, user_id=USER_B, now=NOW)
        await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT, now=NOW)
        with pytest.raises(InvalidInput):  # once started it is for the charging flow
            await bookings.cancel(db, booking_id=booking.id, user_id=USER_A, now=at(28, 18, 30))
        cancelled = await bookings.cancel(db, booking_id=booking.id, user_id=USER_A, now=NOW)
        assert cancelled.status == BookingStatus.CANCELLED


async def test_next_free_joins_a_free_span_that_runs_past_midnight(open_db, charger_id) -> None:
    async with open_db() as db:
        ranked = await search.nearest(db, 31.2310, 121.4740, now=NOW, zone=ZONE)
        (charger,) = (await search.load(db, ranked))[0].chargers
        # Saturday 23:00-24:00 then Sunday 00:00-03:00: at 23:50 it is free now (ten
        # minutes left today, and the span goes on), not "free from 00:00"
        late = at(28, 23, 50)
        assert await search.next_free(db, [charger], late, ZONE) == {charger.id: late}
        # closed 22:00-23:00: free again at 23:00
        assert await search.next_free(db, [charger], at(28, 22, 10), ZONE) == {
            charger.id: at(28, 23)
        }
        # Sunday 02:50: ten minutes left, and nothing after them until Monday 08:00
        assert await search.next_free(db, [charger], at(29, 2, 50), ZONE) == {charger.id: at(30, 8)}


async def test_paused_listing_cannot_be_booked_and_search(open_db, charger_id) -> None:
    async with open_db() as db:
        ranked = await search.nearest(db, 31.2310, 121.4740, now=NOW, zone=ZONE)
        hits = await search.load(db, ranked)  # the full rows of those shown
        assert [h.listing.shop_name for h in hits] == ["Volt Café"]
        assert [h.listing.id for h in hits] == [r.listing_id for r in ranked]
        assert hits[0].distance_km < 0.2 and search.opening(hits[0], NOW, ZONE) == (True, None)
        assert await search.nearest(db, 31.2310, 121.4740, now=NOW, zone=ZONE, kind="ev_car") == []
        assert await search.nearest(db, 39.9, 116.4, now=NOW, zone=ZONE) == []  # Beijing
        closed = await search.nearest(
            db, 31.23, 121.47, now=at(28, 22, 30), zone=ZONE, open_now=True
        )
        assert closed == []
        listing = (await db.scalars(select(Listing))).one()
        await listings.set_paused(db, listing_id=listing.id, merchant_id=MERCHANT, paused=True)
        assert await search.nearest(db, 31.2310, 121.4740, now=NOW, zone=ZONE) == []
    with pytest.raises(InvalidInput) as error:
        await _request(open_db, charger_id)
    assert error.value.key == "err.listing_paused"


async def test_a_booking_step_asks_its_questions_in_one_statement(
    engine, open_db, charger_id
) -> None:
    """The window step (``quote``) and the request read the charger and its shop, the
    user's waiting requests, their own booking the window repeats and whether another
    holds it, in one statement; a row lock is taken only where the database has row
    locks (PostgreSQL: on SQLite the unit of work holds the write lock from BEGIN)."""
    rules = replace(RULES, max_open_requests=3)
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(
            statement.split()[0].upper() + (" FOR UPDATE" if "FOR UPDATE" in statement else "")
        )

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with open_db() as db:
            window = {"start": at(28, 18), "end": at(28, 20)}
            await bookings.quote(
                db, user_id=USER_A, charger_id=charger_id, rules=rules, now=NOW, **window
            )
        assert seen == ["SELECT"]
        seen.clear()
        async with open_db() as db:
            await bookings.request(
                db,
                user_id=USER_A,
                charger_id=charger_id,
                device_kind="e_bike",
                device_model="",
                rules=rules,
                now=NOW,
                **window,
            )
        reads = [s for s in seen if s.startswith("SELECT")]
        locks = ["SELECT FOR UPDATE"] if engine.dialect.name == "postgresql" else []
        assert reads == [*locks, "SELECT"]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    # and each answer read with the charger still refuses: the same window again
    # repeats the booking; another window is past the cap of one request waiting; once
    # accepted, the window is taken for someone else
    with pytest.raises(InvalidInput) as refused:
        await _request(open_db, charger_id, start=at(28, 18), end=at(28, 20))
    assert refused.value.key == "err.booking_repeat"
    one = replace(RULES, max_open_requests=1)

    async def refusals(user: int, when: dict[str, datetime]) -> list[str]:
        """What the window step and Confirm each refuse ``user``'s window with."""
        keys = []
        at_confirm = {"device_kind": "e_bike", "device_model": ""}
        for ask, extra in ((bookings.quote, {}), (bookings.request, at_confirm)):
            with pytest.raises(DomainError) as refused:
                async with open_db() as db:
                    await ask(
                        db, user_id=user, charger_id=charger_id, rules=one, now=NOW, **when, **extra
                    )
            keys.append(refused.value.key)
        return keys

    later = {"start": at(28, 20), "end": at(28, 21)}
    assert await refusals(USER_A, later) == ["err.too_many_requests"] * 2
    async with open_db() as db:
        mine = (await db.scalars(select(Booking.id))).one()
        await bookings.accept(db, booking_id=mine, merchant_id=MERCHANT, now=NOW)
    assert await refusals(USER_B, window) == ["err.window_taken"] * 2
