"""Finding and booking end to end (issue #3): find by location, open the card,
book, the merchant rejects with a reason, book again, the merchant accepts, the
user gets the venue; a taken window is refused with the free ones; cancel; expiry
while the bot was down."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import Booking, BookingStatus, Charger, Listing, User
from models.base import utcnow
from models.db import create_engine, create_session_factory
from services import bookings, listings
from services.bookings import BookingRules
from services.tx import transaction
from tests import factories
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api

MERCHANT, RIDER, OTHER_RIDER = 1001, 2001, 2002


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "en")
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def seed_listing(bot: BotHarness, database_url: str) -> int:
    """An approved listing with one 24/7 e-bike charger; returns the charger id."""
    photo = bot.api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    await bot.api.wait_idle()  # the bot registers the sender: let it finish first
    draft = factories.listing(chargers=1, photo_file_id=photo)
    draft.chargers[0].hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        async with transaction(db):  # the bot writes meanwhile: take the lock first
            for uid in (MERCHANT, RIDER, OTHER_RIDER):
                if await db.get(User, uid) is None:
                    db.add(User(id=uid, first_name=str(uid)))
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=GROUP
        )
        await listings.approve(
            db, revision_id=revision.id, admin_id=ADMINS[0], moderation_chat_id=GROUP
        )
        charger_id = (await db.scalars(select(Charger.id))).one()
    await engine.dispose()
    return charger_id


async def book(bot: BotHarness, user: int, window: str, expect: str) -> dict:
    api = bot.api
    await bot.say(user, "/find", "Where are you")
    after = api.last_message_id(user)
    api.send_location(user, user, 31.2310, 121.4740)
    results = await bot.expect(user, "near you (page 1/1)", after)
    assert "Volt Café" in plain(results) and "0.1 km" in plain(results)
    after = api.last_message_id(user)
    await bot.press(user, user, results, "1. Volt Café")
    card = await bot.expect(user, "Book charger 1", after)
    assert card.get("photo") and "2.50 CNY/hour" in plain(card)
    after = api.last_message_id(user)
    await bot.press(user, user, card, "Book charger 1")
    await bot.expect(user, "Which device", after)
    await bot.say(user, "EV car", "tap one of the buttons")  # not a kind this charger fits
    await bot.say(user, "E-bike", "Which model")
    await bot.say(user, "Yadea G5", "When?")
    return await bot.say(user, window, expect)


async def test_find_book_reject_book_again_accept(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await seed_listing(bot, database_url)

    # bad windows first: each is explained and the question stays
    await book(bot, RIDER, "whenever", "could not read that window")
    await bot.say(RIDER, "2020-01-01 10:00-11:00", "already begun or is in the past")
    await bot.say(RIDER, "tomorrow 09:00-09:05", "between 15 minutes and 24 hours")
    summary = await bot.say(RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    assert "estimate 5.00 CNY" in plain(summary)
    after = api.last_message_id(MERCHANT)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    request = await bot.expect(MERCHANT, "New booking request from Ravi", after)
    assert buttons(request) == [["✅ Accept", "❌ Reject"]]
    assert "E-bike (Yadea G5)" in plain(request)

    # someone else pressing the merchant's Accept changes nothing
    forged = api.press(RIDER, RIDER, summary["message_id"], "bg:accept:1:")
    assert (await api.wait_for_callback_answer(forged))["show_alert"]

    await bot.press(MERCHANT, MERCHANT, request, "Reject")
    request = await bot.expect(MERCHANT, "No free charging spot", after)
    after_rider = api.last_message_id(RIDER)
    await bot.press(MERCHANT, MERCHANT, request, "No free charging spot")
    rejected = await bot.expect(RIDER, "Booking not accepted", after_rider)
    assert "Reason: No free charging spot" in plain(rejected)
    assert buttons(rejected) == [["🔎 Find another charger"]]
    # a second press of the old button acts once: the booking is already rejected
    answer = await api.wait_for_callback_answer(
        api.press(MERCHANT, MERCHANT, request["message_id"], "bg:accept:1:")
    )
    assert "already" in answer["text"]

    # the rider books again; the merchant accepts; the rider gets the venue
    summary = await book(bot, RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    after = api.last_message_id(MERCHANT)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    request = await bot.expect(MERCHANT, "Booking #2", after)
    after_rider = api.last_message_id(RIDER)
    answer = await bot.press(MERCHANT, MERCHANT, request, "Accept")
    assert "Accepted" in answer["text"]
    venue = await api.wait_for_message(RIDER, lambda m: "venue" in m, after=after_rider)
    assert venue["venue"]["title"] == "Volt Café"
    accepted = await bot.expect(RIDER, "Booking accepted", after_rider)
    assert "Smart socket / Sonoff S31" in plain(accepted) and "scan the QR code" in plain(accepted)

    # another rider asking for an overlapping window is told why, with the free windows
    refusal = await book(bot, OTHER_RIDER, "tomorrow 10:00-12:00", "already accepted")
    assert "Free windows that day" in plain(refusal) and "11:00" in plain(refusal)

    # the rider cancels from /bookings (a number opens the booking); the merchant is told
    listed = await bot.say(RIDER, "/bookings", "Your bookings")
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, listed, "#2")
    mine = await bot.expect(RIDER, "Cancel this booking", after)
    # an accepted booking asks to confirm first (issue #16)
    answer = await bot.press(RIDER, RIDER, mine, "Cancel this booking")
    assert "Cancel this accepted booking?" in answer["text"]
    mine = await bot.expect(RIDER, "Yes, cancel it", after)
    after = api.last_message_id(MERCHANT)
    answer = await bot.press(RIDER, RIDER, mine, "Yes, cancel it")
    assert "cancelled" in answer["text"]
    await bot.expect(MERCHANT, "The user cancelled this booking", after)


async def test_expiry_while_the_bot_was_down(bot: BotHarness, database_url: str) -> None:
    charger_id = await seed_listing(bot, database_url)
    await bot.stop()
    # a request made 20 minutes ago that nobody answered (its answer time passed while
    # down): for a window 30 minutes from now, the answer time was 15 minutes
    engine = create_engine(database_url)
    start = (utcnow() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    async with create_session_factory(engine)() as db:
        booking = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=1),
            rules=BookingRules(zone=bot.settings.zone),
            now=utcnow() - timedelta(minutes=20),
        )
    rider_after = bot.api.last_message_id(RIDER)
    merchant_after = bot.api.last_message_id(MERCHANT)
    await bot.start()
    await bot.expect(RIDER, "did not answer in time", rider_after, timeout=15)
    await bot.expect(MERCHANT, "You did not answer this booking in time", merchant_after)
    async with create_session_factory(engine)() as db:
        stored = await db.get(Booking, booking.id)
        assert stored.status == BookingStatus.EXPIRED
    await engine.dispose()
    # the merchant's request message arrived while the bot was up again too,
    # and its Accept now changes nothing
    request = await bot.expect(MERCHANT, "request from", merchant_after)
    if buttons(request):  # sent before the expiry: its Accept changes nothing
        answer = await bot.press(MERCHANT, MERCHANT, request, "Accept")
        assert "already" in answer["text"]
    # sent after it, or edited since (issue #16): it says so, with no buttons at all
    expired = await bot.expect(MERCHANT, "⌛ Expired at", merchant_after)
    assert expired["message_id"] == request["message_id"] and not buttons(expired)


async def test_pages_filters_and_a_listing_paused_while_looking(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    photo = api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    await api.wait_idle()  # the bot registers the sender: let it finish first (as seed_listing)
    engine = create_engine(database_url)
    open_db = create_session_factory(engine)
    async with open_db() as db, transaction(db):
        if await db.get(User, MERCHANT) is None:
            db.add(User(id=MERCHANT, first_name="Mia"))
    for i in range(7):  # seven shops, 100 m apart going north; the last fits EVs only
        draft = factories.listing(
            chargers=1,
            photo_file_id=photo,
            shop_name=f"Shop {i}",
            latitude=31.2300 + i * 0.0009,
            longitude=121.4737,
        )
        draft.chargers[0].plug_id = f"tasmota_shop{i}"  # a plug is one charger's only
        if i == 6:
            draft.chargers[0].device_kinds = ["ev_car"]
        async with open_db() as db:
            revision = await listings.submit(
                db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=GROUP
            )
            await listings.approve(
                db, revision_id=revision.id, admin_id=ADMINS[0], moderation_chat_id=GROUP
            )

    await bot.say(RIDER, "/find", "Where are you")
    after = api.last_message_id(RIDER)
    api.send_location(RIDER, RIDER, 31.2300, 121.4737)
    page = await bot.expect(RIDER, "(page 1/2)", after)
    assert "1. Shop 0" in plain(page) and "Shop 5" not in plain(page)
    await bot.press(RIDER, RIDER, page, "Next")
    page = await bot.expect(RIDER, "(page 2/2)", after)
    assert "6. Shop 5" in plain(page) and "7. Shop 6" in plain(page)
    await bot.press(RIDER, RIDER, page, "Device: any")
    page = await bot.expect(RIDER, "Device: EV car", after)
    assert "Shop 6" in plain(page) and "Shop 0" not in plain(page)

    # the merchant pauses the listing while the rider looks at the results
    async with open_db() as db:
        await listings.set_paused(db, listing_id=7, merchant_id=MERCHANT, paused=True)
    answer = await bot.press(RIDER, RIDER, page, "Shop 6")
    assert answer["show_alert"] and "not available right now" in answer["text"]
    await engine.dispose()


async def test_show_on_map_without_an_address_sends_a_location(
    bot: BotHarness, database_url: str
) -> None:
    """Telegram refuses a venue without an address: the map is a plain location then."""
    api = bot.api
    await seed_listing(bot, database_url)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db, transaction(db):
        await db.execute(update(Listing).values(address=""))
    await engine.dispose()
    await bot.say(RIDER, "/find", "Where are you")
    after = api.last_message_id(RIDER)
    api.send_location(RIDER, RIDER, 31.2310, 121.4740)
    results = await bot.expect(RIDER, "near you (page 1/1)", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, results, "1. Volt Café")
    card = await bot.expect(RIDER, "Show on map", after)
    after = api.last_message_id(RIDER)
    answer = await bot.press(RIDER, RIDER, card, "Show on map")
    assert not answer.get("show_alert")
    place = await api.wait_for_message(RIDER, lambda m: "location" in m, after=after)
    assert place["location"]["latitude"] == pytest.approx(31.2304, abs=0.01)
    assert not api.calls("sendVenue")


async def test_a_confirm_refused_keeps_the_booking_going(
    bot: BotHarness, database_url: str
) -> None:
    """The window was taken while the summary was up: Confirm says so with the free
    windows (a message: too long for an alert), nothing is booked, and a window
    typed then replaces the summary (the conversation stayed where it was)."""
    api = bot.api
    charger_id = await seed_listing(bot, database_url)
    summary = await book(bot, RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    # meanwhile another rider's overlapping booking is accepted
    engine = create_engine(database_url)
    start = (utcnow() + timedelta(days=1)).astimezone(bot.settings.zone)
    start = start.replace(hour=10, minute=0, second=0, microsecond=0)
    async with create_session_factory(engine)() as db:
        theirs = await bookings.request(
            db,
            user_id=OTHER_RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=2),
            rules=BookingRules(zone=bot.settings.zone),
        )
        await bookings.accept(db, booking_id=theirs.id, merchant_id=MERCHANT)
    after = api.last_message_id(RIDER)
    answer = await bot.press(RIDER, RIDER, summary, "Confirm booking")
    assert not answer.get("show_alert")
    refusal = await bot.expect(RIDER, "already accepted", after)
    assert "Free windows that day" in plain(refusal) and "12:00" in plain(refusal)
    async with create_session_factory(engine)() as db:
        mine = (await db.scalars(select(Booking).where(Booking.user_id == RIDER))).all()
    await engine.dispose()
    assert mine == []
    summary = await bot.say(RIDER, "tomorrow 13:00-14:00", "Confirm booking")
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    await bot.expect(RIDER, "Booking #2 is requested", after)
