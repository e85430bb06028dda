"""Cards that stay true (issue #16), end to end over the local Bot API server:
every card that shows a state ends in its final state, on every side holding a
copy, with no live buttons left: the merchant's request card, the rider's booking
cards, the review card and the copies /pending posts again."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import Booking, Charger
from models.base import utcnow
from services import bookings, listings
from services.bookings import BookingRules
from tests import factories
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, current, start_api
from tests.support.waiting import wait_until
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER, book, seed_listing
from tests.test_flow_charging import database


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "zh")
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url, scheduler_interval_seconds=0.3)
    await harness.start()
    yield harness
    await harness.stop()


async def shows(api: FakeBotAPI, chat: int, message: dict, *words: str, live: bool = False) -> dict:
    """Wait until the message says all ``words`` (and has buttons only if ``live``)."""

    def now() -> dict:
        return current(api, chat, message["message_id"])

    def true() -> bool:
        text = plain(now())
        return all(w in text for w in words) and bool(buttons(now())) == live

    await wait_until(true, 10, what=f"message {message['message_id']} saying {words}")
    return now()


async def test_booking_cards_follow_accept_and_cancel(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await seed_listing(bot, database_url)
    summary = await book(bot, RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    after, after_merchant = api.last_message_id(RIDER), api.last_message_id(MERCHANT)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    sent = await bot.expect(RIDER, "is requested", after)
    request = await bot.expect(MERCHANT, "New booking request from Ravi", after_merchant)
    assert buttons(request) == [["✅ Accept", "❌ Reject"]]

    after = api.last_message_id(RIDER)
    await bot.press(MERCHANT, MERCHANT, request, "Accept")
    # the merchant's card: who decided and when, no buttons; the rider's: accepted
    await shows(api, MERCHANT, request, "✅ Accepted by you at", "Booking #1")
    accepted = await bot.expect(RIDER, "Booking accepted!", after)
    await shows(api, RIDER, sent, "Booking accepted!", "Booking #1", live=True)

    # the rider opens it from /bookings and cancels: every copy says so
    listed = await bot.say(RIDER, "/bookings", "Your bookings")
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, listed, "#1")
    opened = await bot.expect(RIDER, "Cancel this booking", after)
    # an accepted booking asks first; "Keep" leaves it as it was
    answer = await bot.press(RIDER, RIDER, opened, "Cancel this booking")
    assert "Cancel this accepted booking?" in answer["text"]
    asking = await bot.expect(RIDER, "Yes, cancel it", after)
    assert asking["message_id"] == opened["message_id"]
    assert buttons(asking) == [["✖️ Yes, cancel it", "↩️ Keep the booking"]]
    assert "stands" in (await bot.press(RIDER, RIDER, asking, "Keep the booking"))["text"]
    await wait_until(
        lambda: buttons(current(api, RIDER, opened["message_id"])) == [["✖️ Cancel this booking"]],
        what="Keep puts Cancel back",
    )
    kept = current(api, RIDER, opened["message_id"])
    await bot.press(RIDER, RIDER, kept, "Cancel this booking")
    asking = await bot.expect(RIDER, "Yes, cancel it", after)
    answer = await bot.press(RIDER, RIDER, asking, "Yes, cancel it")
    assert "cancelled" in answer["text"]
    await shows(api, MERCHANT, request, "❌ Cancelled by the rider at", "Booking #1")
    for card in (sent, accepted, opened):
        await shows(api, RIDER, card, "❌ Cancelled by you at", "✖️ cancelled")


async def test_an_expired_request_says_so_on_both_sides(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    charger_id = await seed_listing(bot, database_url)
    after = api.last_message_id(MERCHANT)
    start = utcnow() + timedelta(minutes=40)
    async with database(database_url) as db:
        # asked 15 minutes ago (less 3 s) for a window 40 minutes from now: the answer
        # (15 minutes, more than a quarter of the lead time) is due in 3 seconds
        await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=1),
            rules=BookingRules(zone=bot.settings.zone),
            now=utcnow() - timedelta(minutes=15) + timedelta(seconds=3),
        )
    request = await bot.expect(MERCHANT, "Booking #1", after)
    expired = await shows(api, MERCHANT, request, "⌛ Expired at", "nobody answered")
    assert "Please answer by" not in plain(expired)
    # a late press of a button the card no longer has changes nothing
    forged = api.press(MERCHANT, MERCHANT, request["message_id"], "bg:accept:1:")
    assert "already" in (await api.wait_for_callback_answer(forged))["text"]
    await bot.expect(RIDER, "did not answer in time", 0)


async def test_review_card_and_its_copies_end_approved(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    photo = api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    await api.wait_idle()
    async with database(database_url) as db:
        await listings.submit(
            db,
            merchant_id=MERCHANT,
            draft=factories.listing(chargers=1, photo_file_id=photo),
            moderation_chat_id=GROUP,
        )
    card = await bot.expect(GROUP, "Approve", 0)
    # /pending posts it again (the first scrolled away): a second card of the version
    listed = await bot.say_in_group(ADMINS[0], "/pending", "Waiting for review: 1")
    after = api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[0], listed, "Card #1")
    copy = await bot.expect(GROUP, "Approve", after)
    assert copy["message_id"] != card["message_id"]

    await bot.press(GROUP, ADMINS[1], copy, "Approve")
    for posted in (card, copy):
        text = plain(await shows(api, GROUP, posted, "✅ Approved by"))
        assert "Waiting for review" not in text
    async with database(database_url) as db:
        assert (await db.scalars(select(Charger.id))).all()  # approved: public


async def _request(database_url: str, charger_id: int, start, asked, settings) -> int:
    async with database(database_url) as db:
        booking = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=1),
            rules=BookingRules(zone=settings.zone),
            now=asked,
        )
    return booking.id


async def test_the_merchant_is_nudged_and_the_nudge_is_a_card_too(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    charger_id = await seed_listing(bot, database_url)
    after = api.last_message_id(MERCHANT)
    # asked 11 minutes ago for a window 40 minutes from now: due in 4 minutes
    now = utcnow()
    await _request(
        database_url,
        charger_id,
        now + timedelta(minutes=40),
        now - timedelta(minutes=11),
        bot.settings,
    )
    request = await bot.expect(MERCHANT, "New booking request", after)
    nudge = await bot.expect(MERCHANT, "Please answer by", after)
    assert buttons(nudge) == [["✅ Accept", "❌ Reject"]]
    after_rider = api.last_message_id(RIDER)
    await bot.press(MERCHANT, MERCHANT, nudge, "Accept")
    await bot.expect(RIDER, "Booking accepted!", after_rider)
    for card in (request, nudge):
        await shows(api, MERCHANT, card, "✅ Accepted by you at")


async def test_the_rider_is_reminded_with_on_my_way_and_cancel(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    charger_id = await seed_listing(bot, database_url)
    now = utcnow()
    start = now + timedelta(minutes=25)
    booking_id = await _request(database_url, charger_id, start, now, bot.settings)
    after = api.last_message_id(RIDER)
    async with database(database_url) as db:
        # accepted an hour ago (long before the half hour before its start)
        await bookings.accept(db, booking_id=booking_id, merchant_id=MERCHANT)
        await db.execute(
            update(Booking)
            .where(Booking.id == booking_id)
            .values(decided_at=now - timedelta(hours=1))
        )
        await db.commit()
    reminder = await bot.expect(RIDER, "Your booking starts at", after)
    assert buttons(reminder) == [["🚶 On my way", "✖️ Cancel this booking"]]
    after_merchant = api.last_message_id(MERCHANT)
    answer = await bot.press(RIDER, RIDER, reminder, "On my way")
    assert "merchant is told" in answer["text"]
    await bot.expect(MERCHANT, "Ravi is on the way for booking #1", after_merchant)
    # Cancel from the reminder asks first, like every accepted booking's
    answer = await bot.press(RIDER, RIDER, reminder, "Cancel this booking")
    assert "Cancel this accepted booking?" in answer["text"]
    asking = await bot.expect(RIDER, "Yes, cancel it", after)
    answer = await bot.press(RIDER, RIDER, asking, "Yes, cancel it")
    assert "cancelled" in answer["text"]
    await bot.expect(MERCHANT, "The user cancelled this booking", after_merchant)
    await shows(api, RIDER, reminder, "❌ Cancelled by you at")


async def test_find_shows_each_charger_with_its_price_and_when_it_is_free(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    charger_id = await seed_listing(bot, database_url)

    async def results() -> str:
        await bot.say(RIDER, "/find", "Where are you")
        after = api.last_message_id(RIDER)
        api.send_location(RIDER, RIDER, 31.2310, 121.4740)
        return plain(await bot.expect(RIDER, "near you (page 1/1)", after))

    line = await results()
    assert "Charger 1 (AC slow) · 2.50 CNY/hour · E-bike" in line and "🟢 free now" in line
    # booked from now for an hour: free again at its end
    now = utcnow()
    booking_id = await _request(database_url, charger_id, now, now, bot.settings)
    async with database(database_url) as db:
        await bookings.accept(db, booking_id=booking_id, merchant_id=MERCHANT, now=now)
    end = (now + timedelta(hours=1)).astimezone(bot.settings.zone)
    line = await results()
    if end.date() == now.astimezone(bot.settings.zone).date():
        assert f"🕒 next free at {end:%H:%M}" in line
    else:
        assert f"🕒 next free tomorrow {end:%H:%M}" in line


async def test_start_is_a_short_welcome_and_help_depends_on_the_chat(bot: BotHarness) -> None:
    api = bot.api
    hello = await bot.say(RIDER, "/start", "ChargeShare")
    assert buttons(hello) == [["🔎 Find a charger"], ["🏪 List my chargers"]]
    assert len(plain(hello)) < 200  # not a wall of text
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, hello, "Find a charger")
    await bot.expect(RIDER, "Where are you", after)
    hello = await bot.say(MERCHANT, "/start", "ChargeShare")
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, hello, "List my chargers")
    await bot.expect(MERCHANT, "phone", after)
    # the admins' group: its own help, also for /start there
    helped = await bot.say_in_group(ADMINS[0], "/help", "/pending")
    assert "/sessions" in plain(helped) and "/newlisting" not in plain(helped)
    await bot.say_in_group(ADMINS[0], "/start", "/sessions")
    assert "/pending" not in plain(await bot.say(RIDER, "/help", "/find"))
