"""What hostile and careless users broke (issue #12), through the real bot and
the local Bot API server, on SQLite and PostgreSQL: characters a database or
Telegram refuses, one plug named by two merchants, a price with two currencies,
hours that overlap past midnight, a booking years ahead, and an alert that a
second answer to one callback query swallowed."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from models import Booking, Listing, ListingRevision, RevisionStatus, User
from models.db import create_engine, create_session_factory
from services import listings
from services.listing_draft import ListingDraft
from services.tx import transaction
from tests import factories
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api
from tests.test_flow_booking import OTHER_RIDER, RIDER, book, seed_listing
from tests.test_flow_listing import MERCHANT, fill_charger, pair_later

OTHER_MERCHANT = 1002


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"),
        (OTHER_MERCHANT, "Max", "en"),
        (RIDER, "Ravi", "en"),
        (OTHER_RIDER, "Olga", "en"),
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def _shop_up_to_name(bot: BotHarness, user: int) -> None:
    api = bot.api
    await bot.say(user, "/newlisting", "Contact phone")
    after = api.last_message_id(user)
    api.send_contact(user, user, "8613800000000", "Mia", contact_user_id=user)
    await bot.expect(user, "Shop name", after)


async def _rest_of_shop(bot: BotHarness, user: int) -> None:
    api = bot.api
    after = api.last_message_id(user)
    api.send_photo(user, user)
    await bot.expect(user, "Shop area", after)
    await bot.say(user, "45", "Location")
    after = api.last_message_id(user)
    api.send_location(user, user, 31.2304, 121.4737)
    await bot.expect(user, "Address", after)
    await bot.say(user, "1 Nanjing Rd", "Charger 1")


async def _submit_summary(bot: BotHarness, user: int) -> dict:
    summary = await bot.say(user, "✅ Done, review the listing", "Submit for review")
    cursor = bot.api.last_message_id(GROUP)
    answer = await bot.press(user, user, summary, "Submit")
    assert "Submitted" in answer["text"], answer
    return await bot.expect(GROUP, "New listing", cursor, timeout=10)


async def test_characters_the_database_or_telegram_refuse_in_the_wizard(
    bot: BotHarness, database_url: str
) -> None:
    """A NUL passed the wizard and then broke approval on PostgreSQL; a lone
    surrogate passed and then no summary could ever be sent; a name of
    zero-width characters passed. Each is refused at its step now."""
    user = MERCHANT
    await _shop_up_to_name(bot, user)
    await bot.say(user, "Volt\x00Café", "control characters")
    await bot.say(user, "Volt\ud800Café", "not valid text")
    await bot.say(user, "\u200b\u200b\u200b", "between 2 and 64 characters")
    await bot.say(user, "\u200bVolt\u3000Café\u200b", "photo of the storefront")
    await _rest_of_shop(bot, user)
    await bot.say(user, "Household socket", "which devices")
    await bot.say(user, "E-bike", "Selected: E-bike")
    await bot.say(user, "✅ Done", "models")
    await bot.say(user, "Yadea\x00", "control characters")
    await bot.say(user, "Any model", "Supply device kind")
    await bot.say(user, "Smart\ud83dsocket", "not valid text")
    await bot.say(user, "Smart socket", "Supply device model")
    await bot.say(user, "Sonoff S31", "Rated power")
    await bot.say(user, "2.2", "When can it be used")
    await bot.say(user, "Mon 20:00-02:00, Tue 01:00-03:00", "runs past midnight")
    await bot.say(user, "Every day 08:00-22:00", "per hour")
    await bot.say(user, "per hour", "Price")
    await bot.say(user, "$3 CNY", "two different currencies ($, CNY)")
    await bot.say(user, "3\x00", "control characters")
    await bot.say(user, "2.5", "smart plug")
    await bot.say(user, "Tasmota", "Tasmota")
    await bot.say(user, "tasmota_A1\x00", "A Tasmota topic is")
    await pair_later(bot, user, "tasmota_A1\u200b")  # pasted with a zero-width tail
    card = await _submit_summary(bot, user)
    # the fields: in the card's caption, or in a reply to it when they do not fit
    fields = await bot.expect(GROUP, "tasmota_A1", card["message_id"] - 1, timeout=10)
    assert "Volt Café" in plain(card) and "Volt Café" in plain(fields)

    # approval writes the public rows: nothing in them that PostgreSQL refuses
    after = bot.api.last_message_id(user)
    answer = await bot.press(GROUP, ADMINS[0], card, "Approve")
    assert "Approved" in answer["text"], answer
    await bot.expect(user, "is approved", after)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        listing = (await db.scalars(select(Listing))).one()
        assert listing.shop_name == "Volt Café" and listing.published
    await engine.dispose()


async def test_a_typed_rejection_reason_with_a_nul(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await _shop_up_to_name(bot, MERCHANT)
    await bot.say(MERCHANT, "Volt Café", "photo of the storefront")
    await _rest_of_shop(bot, MERCHANT)
    await fill_charger(bot, 1, "Tasmota", "tasmota_A1")
    card = await _submit_summary(bot, MERCHANT)
    await bot.press(GROUP, ADMINS[0], card, "Reject")
    card = await bot.expect(GROUP, "Other reason", 0)
    cursor = api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[0], card, "Other reason")
    prompt = await bot.expect(GROUP, "reply to this message", cursor)

    cursor = api.last_message_id(GROUP)
    api.send_text(GROUP, ADMINS[0], "Blurry\x00 photo", reply_to_message_id=prompt["message_id"])
    await bot.expect(GROUP, "control characters", cursor)
    # the question stays: the next reply is taken as the reason
    after = api.last_message_id(MERCHANT)
    api.send_text(
        GROUP, ADMINS[0], "Blurry photo,\nplease retake", reply_to_message_id=prompt["message_id"]
    )
    await bot.expect(GROUP, "rejected; the merchant gets your reason", cursor)
    notice = await bot.expect(MERCHANT, "was not approved", after)
    assert "Blurry photo,\nplease retake" in plain(notice)


async def test_a_typed_booking_refusal_with_a_nul(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await seed_listing(bot, database_url)
    summary = await book(bot, RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    after = api.last_message_id(MERCHANT)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    request = await bot.expect(MERCHANT, "New booking request", after)
    await bot.press(MERCHANT, MERCHANT, request, "Reject")
    request = await bot.expect(MERCHANT, "Other reason", after)
    await bot.press(MERCHANT, MERCHANT, request, "Other reason")
    await bot.expect(MERCHANT, "Reply with the reason", after)
    await bot.say(MERCHANT, "Closed\x00 today", "control characters")
    await bot.say(MERCHANT, "Closed\udc00 today", "not valid text")
    after_rider = api.last_message_id(RIDER)
    await bot.say(MERCHANT, "Closed today", "rejected; the user gets your reason")
    rejected = await bot.expect(RIDER, "Booking not accepted", after_rider)
    assert "Closed today" in plain(rejected)


async def test_a_booking_years_ahead_is_refused(bot: BotHarness, database_url: str) -> None:
    await seed_listing(bot, database_url)
    await book(bot, RIDER, "2099-01-01 10:00-12:00", "at most 30 days ahead")
    # the question stays, and a window inside the horizon goes through
    await bot.say(RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        assert (await db.scalars(select(Booking))).all() == []
    await engine.dispose()


async def _approved_listing(database_url: str, merchant: int, plug: str) -> int:
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        async with transaction(db):
            if await db.get(User, merchant) is None:
                db.add(User(id=merchant, first_name=str(merchant)))
        draft = factories.listing(chargers=1)
        draft.chargers[0].plug_id = plug
        revision = await listings.submit(
            db, merchant_id=merchant, draft=draft, moderation_chat_id=GROUP
        )
        await listings.approve(
            db, revision_id=revision.id, admin_id=ADMINS[0], moderation_chat_id=GROUP
        )
    await engine.dispose()
    return revision.listing_id


async def test_the_plug_step_refuses_another_chargers_plug(
    bot: BotHarness, database_url: str
) -> None:
    await bot.api.wait_idle()
    await _approved_listing(database_url, MERCHANT, "tasmota_A1")
    user = OTHER_MERCHANT
    await _shop_up_to_name(bot, user)
    await bot.say(user, "Max Charge", "photo of the storefront")
    await _rest_of_shop(bot, user)
    await fill_charger(bot, 1, "Tasmota", "tasmota_B1", user=user)
    await bot.say(user, "➕ Add a charger", "Charger 2")
    # charger 2: the merchant's own charger 1 has that plug
    await bot.say(user, "Household socket", "which devices")
    await bot.say(user, "E-bike", "Selected: E-bike")
    await bot.say(user, "✅ Done", "models")
    await bot.say(user, "Any model", "Supply device kind")
    await bot.say(user, "Smart socket", "Supply device model")
    await bot.say(user, "Sonoff S31", "Rated power")
    await bot.say(user, "2.2", "When can it be used")
    await bot.say(user, "Every day 08:00-22:00", "per hour")
    await bot.say(user, "per hour", "Price")
    await bot.say(user, "2.5", "smart plug")
    await bot.say(user, "Tasmota", "Tasmota")
    await bot.say(user, "tasmota_B1", "Charger 1 of this listing already has that plug")
    # another merchant's approved charger has this one
    await bot.say(user, "tasmota_A1", "already used by a charger of another listing")
    await pair_later(bot, user, "tasmota_B2")  # accepted: the wizard goes on
    summary = await bot.say(user, "✅ Done, review the listing", "Submit for review")
    assert "tasmota_B2" in plain(summary) and "tasmota_A1" not in plain(summary)


async def test_the_review_card_shows_a_shared_plug_and_approval_refuses_it(
    bot: BotHarness, database_url: str
) -> None:
    """Two merchants submit the same plug; the cards say so; approving the
    second after the first is refused with an alert and changes nothing."""
    api = bot.api
    photo = api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    await api.wait_idle()  # the bot registers the sender: let it finish first
    engine = create_engine(database_url)
    open_db = create_session_factory(engine)
    async with open_db() as db, transaction(db):
        for uid in (MERCHANT, OTHER_MERCHANT):
            if await db.get(User, uid) is None:
                db.add(User(id=uid, first_name=str(uid)))
    revisions: list[ListingRevision] = []
    cursor = api.last_message_id(GROUP)
    for merchant, name in ((MERCHANT, "First Plug"), (OTHER_MERCHANT, "Second Plug")):
        draft: ListingDraft = factories.listing(chargers=1, shop_name=name, photo_file_id=photo)
        draft.chargers[0].plug_id = "tasmota_SAME"
        async with open_db() as db:
            revisions.append(
                await listings.submit(
                    db, merchant_id=merchant, draft=draft, moderation_chat_id=GROUP
                )
            )
    first_card = await bot.expect(GROUP, "First Plug", cursor, timeout=10)
    second_card = await bot.expect(GROUP, "Second Plug", cursor, timeout=10)
    first_id = revisions[0].listing_id
    assert f"plug Tasmota tasmota_SAME is also in listing #{first_id}, under review" in plain(
        second_card
    )

    answer = await bot.press(GROUP, ADMINS[0], first_card, "Approve")
    assert "Approved" in answer["text"]
    # the other card is brought up to date
    second_card = await api.wait_for_message(
        GROUP,
        lambda m: f"already used by approved listing #{first_id}" in plain(m),
        after=cursor,
        timeout=10,
    )
    answer = await bot.press(GROUP, ADMINS[1], second_card, "Approve")
    assert answer["show_alert"], answer
    assert f"is in use by listing #{first_id}" in answer["text"]
    assert len(answer["text"]) <= 200  # Telegram's limit for an alert
    async with open_db() as db:
        second = await db.get(ListingRevision, revisions[1].id)
        assert second is not None and second.status == RevisionStatus.PENDING
    await engine.dispose()
    # and it can still be rejected as a duplicate
    await bot.press(GROUP, ADMINS[0], second_card, "Reject")
    menu = await bot.expect(GROUP, "already listed", cursor)
    answer = await bot.press(GROUP, ADMINS[0], menu, "already listed")
    assert "Rejected" in answer["text"]


async def test_show_card_refusal_is_the_one_answer(bot: BotHarness) -> None:
    """/pending's "Card #n" answered the query and then tried a second answer
    with the refusal, which Telegram refuses: the admin saw nothing."""
    reply = await bot.say_in_group(ADMINS[0], "/pending", "Nothing is waiting")
    query = bot.api.press(GROUP, ADMINS[0], reply["message_id"], "rv:show:999:")
    answer = await bot.api.wait_for_callback_answer(query)
    assert answer["show_alert"] and "does not exist" in answer["text"], answer
    assert buttons(reply) == []


async def test_typed_search_text_with_a_nul_or_a_wildcard(
    bot: BotHarness, database_url: str
) -> None:
    """/find's typed text went into a LIKE pattern as typed: a NUL failed the
    query on PostgreSQL, and "%" matched every shop."""
    await seed_listing(bot, database_url)
    await bot.say(RIDER, "/find", "Where are you")
    await bot.say(RIDER, "Volt\x00Café", "found no shop")
    await bot.say(RIDER, "%%", "found no shop")
    await bot.say(RIDER, "volt café", "Chargers near “Volt Café”")


async def test_a_device_model_with_a_nul_is_refused_at_its_step(
    bot: BotHarness, database_url: str
) -> None:
    """The model typed while booking is cleaned where it is typed: a NUL would
    otherwise fail the Confirm on PostgreSQL, after the rider typed everything."""
    await seed_listing(bot, database_url)
    api = bot.api
    await bot.say(RIDER, "/find", "Where are you")
    after = api.last_message_id(RIDER)
    api.send_location(RIDER, RIDER, 31.2310, 121.4740)
    results = await bot.expect(RIDER, "near you (page 1/1)", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, results, "1. Volt Café")
    card = await bot.expect(RIDER, "Book charger 1", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, card, "Book charger 1")
    await bot.expect(RIDER, "Which device", after)
    await bot.say(RIDER, "E-bike", "Which model")
    await bot.say(RIDER, "Yadea\x00G5", "control characters")
    # the question stays; a clean answer goes on, and the booking is made
    await bot.say(RIDER, "Yadea G5", "When?")
    summary = await bot.say(RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    await bot.expect(RIDER, "is requested", after)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        assert [b.device_model for b in (await db.scalars(select(Booking))).all()] == ["Yadea G5"]
    await engine.dispose()
