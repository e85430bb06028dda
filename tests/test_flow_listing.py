"""The listing lifecycle end to end: the real bot talks HTTP to the local Bot API
server while the tests act as a merchant and admins (issue #2's flow tests)."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from models import AuditEntry, Listing, ListingStatus
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api

MERCHANT, STRANGER = 1001, 555


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((MERCHANT, "Mia", "en"), (STRANGER, "Sam", "en"))
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def fill_shop(bot: BotHarness, user: int = MERCHANT) -> None:
    api = bot.api
    await bot.say(user, "/newlisting", "Contact phone")
    after = api.last_message_id(user)
    api.send_contact(user, user, "8613800000000", "Mia", contact_user_id=user)
    await bot.expect(user, "Shop name", after)
    await bot.say(user, "Volt Café", "photo of the storefront")
    await bot.say(user, "here is no photo", "Please send a photo")  # bad input
    after = api.last_message_id(user)
    api.send_photo(user, user)
    await bot.expect(user, "Shop area", after)
    await bot.say(user, "big", "number of square metres")  # bad input, same question
    await bot.say(user, "45", "Location")
    after = api.last_message_id(user)
    api.send_location(user, user, 31.2304, 121.4737)
    await bot.expect(user, "Address", after)
    await bot.say(user, "1 Nanjing Rd", "Charger 1")


async def fill_charger(
    bot: BotHarness, n: int, driver: str, plug: str, user: int = MERCHANT, paired: bool = False
) -> None:
    await bot.say(user, "Household socket", "which devices")
    await bot.say(user, "✅ Done", "at least one kind")  # nothing chosen yet
    await bot.say(user, "E-bike", "Selected: E-bike")
    await bot.say(user, "Phone / laptop", "Selected: E-bike, Phone / laptop")
    await bot.say(user, "✅ Done", "models")
    await bot.say(user, "Any model", "Supply device kind")
    await bot.say(user, "Smart socket", "Supply device model")
    await bot.say(user, "Sonoff S31", "Rated power")
    await bot.say(user, "fast", "rated power in kW")  # bad input, same question
    await bot.say(user, "2200 W", "When can it be used")
    await bot.say(user, "Mon 25:00-26:00", "is not a time of day")
    await bot.say(user, "Every day 08:00-22:00", "per hour")
    await bot.say(user, "per hour", "Price")
    await bot.say(user, "free", "as a number greater than 0")
    await bot.say(user, "2.5", "smart plug")
    await bot.say(user, driver, driver)
    await bot.say(user, "bad/topic", "no spaces")
    if paired:  # its plug is online on the bot's broker: paired by switching it
        after = bot.api.last_message_id(user)
        bot.api.send_text(user, user, plug)
        await bot.expect(user, "is paired", after, timeout=30)
        await bot.expect(user, "Add another", after, timeout=30)
    else:
        await pair_later(bot, user, plug)


async def pair_later(bot: BotHarness, user: int, plug: str) -> None:
    """A plug that is not online (no broker in most flow tests): its pairing fails, and
    the merchant keeps the charger unpaired ("Pair later": reviewable, not bookable)."""
    after = bot.api.last_message_id(user)
    bot.api.send_text(user, user, plug)
    await bot.expect(user, "Pair the plug now", after, timeout=30)
    after = bot.api.last_message_id(user)
    await bot.say(user, "🕓 Pair later", "Add another")
    # the set-up instructions: no account administration in these tests (MQTT_DYNSEC off)
    setup = await bot.expect(user, "Setting up a", after)
    assert "ask the broker's admin to add an account" in plain(setup)


async def test_submit_reject_edit_resubmit_approve(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await fill_shop(bot)
    await fill_charger(bot, 1, "Tasmota", "tasmota_A1")
    await bot.say(MERCHANT, "➕ Add a charger", "Charger 2")
    await fill_charger(bot, 2, "Shelly", "shellyplusplugs-b8d61a8a1234")
    summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    text = plain(summary)
    assert "Volt Café" in text and "Charger 2" in text and "2.50 CNY/hour" in text
    assert "shellyplusplugs-b8d61a8a1234" in text and "Mon–Sun 08:00–22:00" in text
    assert "Smart socket / Sonoff S31, 2.2 kW" in text

    group_cursor = api.last_message_id(GROUP)
    after = api.last_message_id(MERCHANT)
    answer = await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    assert "Submitted" in answer["text"]
    await bot.expect(MERCHANT, "submitted for review", after)
    card = await bot.expect(GROUP, "New listing", group_cursor)
    # one card (issue #16): the photo with its caption and buttons; a listing too long
    # for a caption has its fields in a reply to it
    assert card.get("photo"), "the card carries the storefront photo"
    fields = await bot.expect(GROUP, "+8613800000000", group_cursor)
    assert fields["message_id"] == card["message_id"] or (
        fields["reply_to_message"]["message_id"] == card["message_id"]
    )
    assert "Volt Café" in plain(card) and "+8613800000000" in plain(fields)
    assert buttons(card) == [["✅ Approve", "❌ Reject"]]

    # someone who is not an admin presses Approve: an alert, nothing changes
    answer = await bot.press(GROUP, STRANGER, card, "Approve")
    assert answer["show_alert"] and "Only the platform's admins" in answer["text"]

    # an admin rejects with a preset reason
    await bot.press(GROUP, ADMINS[0], card, "Reject")
    card = await api.wait_for_message(
        GROUP,
        lambda m: any("photo is unclear" in b for row in buttons(m) for b in row),
        after=group_cursor,
    )
    after = api.last_message_id(MERCHANT)
    answer = await bot.press(GROUP, ADMINS[0], card, "photo is unclear")
    assert "Rejected" in answer["text"]
    rejected = await bot.expect(MERCHANT, "was not approved", after)
    assert "The storefront photo is unclear" in plain(rejected)
    card = await bot.expect(GROUP, f"Rejected by {ADMINS[0]}", group_cursor)
    assert buttons(card) == []

    # the merchant edits the photo and resubmits
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, rejected, "Edit and resubmit")
    summary = await bot.expect(MERCHANT, "Submit for review", after)
    await bot.press(MERCHANT, MERCHANT, summary, "Edit")
    summary = await api.wait_for_message(
        MERCHANT, lambda m: any("📷 Photo" in b for row in buttons(m) for b in row), after=after
    )
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, summary, "📷 Photo")
    await bot.expect(MERCHANT, "photo of the storefront", after)
    after = api.last_message_id(MERCHANT)
    api.send_photo(MERCHANT, MERCHANT)
    summary = await bot.expect(MERCHANT, "Submit for review", after)
    group_cursor = api.last_message_id(GROUP)
    await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    card = await bot.expect(GROUP, "Edited listing", group_cursor)
    # what changed, and why the version before was rejected (issue #16)
    assert "Changed since version 1: 📷 Photo" in plain(card)
    assert "Version 1 was rejected: The storefront photo is unclear" in plain(card)

    # another admin approves; the merchant is told; a late second press changes nothing
    after = api.last_message_id(MERCHANT)
    answer = await bot.press(GROUP, ADMINS[1], card, "Approve")
    assert "Approved" in answer["text"]
    await bot.expect(MERCHANT, "is approved and now public", after)
    await bot.expect(GROUP, f"Approved by {ADMINS[1]}", group_cursor)
    answer = await bot.api.wait_for_callback_answer(
        api.press(GROUP, ADMINS[0], card["message_id"], "rv:approve:" + "2:")
    )
    assert "Already decided" in answer["text"]

    listings_reply = await bot.say(MERCHANT, "/listings", "Your listings")
    assert "approved" in plain(listings_reply)

    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        listing = (await db.scalars(select(Listing))).one()
        assert listing.status == ListingStatus.APPROVED and listing.published
        audit = (await db.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        assert [(a.action, a.actor_id) for a in audit] == [
            ("submit", MERCHANT),
            ("reject", ADMINS[0]),
            ("submit", MERCHANT),
            ("approve", ADMINS[1]),
        ]
        assert audit[1].reason == "preset:photo"
    await engine.dispose()
