"""Issue #12, item 4: a listing's draft survives every other flow. Four answers
into /newlisting, the person finds and books a charger, looks at their bookings
and listings, switches the language, scans a QR code, cancels a search with
/cancel, the bot restarts; /newlisting then offers to continue where they stopped, and the summary
has every answer. Only the wizard's own Cancel discards the draft."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from models import Charger
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, plain
from tests.harness import BotHarness, start_api
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER, seed_listing


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"),
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


async def _qr_token(database_url: str) -> str:
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        token = (await db.scalars(select(Charger.qr_token))).one()
    await engine.dispose()
    return token


async def _four_answers(bot: BotHarness, user: int) -> None:
    api = bot.api
    await bot.say(user, "/newlisting", "Contact phone")
    await bot.say(user, "+86 138 0000 1111", "Shop name")
    await bot.say(user, "Corner Charge", "photo of the storefront")
    after = api.last_message_id(user)
    api.send_photo(user, user)
    await bot.expect(user, "Shop area", after)
    await bot.say(user, "30", "Location")


async def _continue(bot: BotHarness, user: int, expect: str) -> dict:
    offer = await bot.say(user, "/newlisting", "unfinished listing")
    after = bot.api.last_message_id(user)
    await bot.press(user, user, offer, "Continue")
    return await bot.expect(user, expect, after)


async def test_the_draft_survives_every_other_flow(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await seed_listing(bot, database_url)
    await _four_answers(bot, RIDER)

    # /find, a result's card, Book: the booking's questions replace the wizard's
    await bot.say(RIDER, "/find", "Where are you")
    after = api.last_message_id(RIDER)
    api.send_location(RIDER, RIDER, 31.2310, 121.4740)
    results = await bot.expect(RIDER, "near you (page", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, results, "1. Volt Café")
    card = await bot.expect(RIDER, "Book charger 1", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, card, "Book charger 1")
    await bot.expect(RIDER, "Which device", after)
    await bot.say(RIDER, "E-bike", "Which model")
    await bot.say(RIDER, "/bookings", "no bookings yet")
    await bot.say(RIDER, "/listings", "no listings yet")
    picker = await bot.say(RIDER, "/language", "Choose")
    await bot.press(RIDER, RIDER, picker, "English")
    await bot.say(RIDER, f"/start {await _qr_token(database_url)}", "Charge now?")  # a QR scan
    await bot.say(RIDER, "/find", "Where are you")
    await bot.say(RIDER, "/cancel", "Cancelled")  # /cancel outside the wizard
    await bot.restart()

    prompt = await _continue(bot, RIDER, "Location")
    assert "Location" in plain(prompt)
    after = api.last_message_id(RIDER)
    api.send_location(RIDER, RIDER, 31.22, 121.46)
    await bot.expect(RIDER, "Address", after)
    await bot.say(RIDER, "9 Fuxing Rd", "Charger 1")
    # a command in the middle of the charger questions, then on where it stopped
    await bot.say(RIDER, "/bookings", "no bookings yet")
    await _continue(bot, RIDER, "Charger 1")


async def test_cancel_keeps_the_draft_and_the_wizard_cancel_discards_it(
    bot: BotHarness, database_url: str
) -> None:
    await _four_answers(bot, RIDER)
    await bot.say(RIDER, "/cancel", "Your answers are kept")
    await _continue(bot, RIDER, "Location")
    await bot.say(RIDER, "✖️ Cancel", "nothing was submitted")  # the wizard's own Cancel
    await bot.say(RIDER, "/newlisting", "Let's list your shop")  # a fresh start, no offer
    await bot.say(RIDER, "/cancel", "Your answers are kept")
    # nothing answered yet: nothing to offer
    await bot.say(RIDER, "/newlisting", "Let's list your shop")


async def test_a_summary_left_for_another_flow_still_submits(
    bot: BotHarness, database_url: str
) -> None:
    """At the summary, the merchant looks something up; the summary's Submit then
    still acts on the kept draft (it was 'out of date' when the state moved on)."""
    from tests.test_flow_listing import fill_charger, fill_shop

    await fill_shop(bot, MERCHANT)
    await fill_charger(bot, 1, "Tasmota", "tasmota_D1", user=MERCHANT)
    summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    await bot.say(MERCHANT, "/find", "Where are you")
    answer = await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    assert answer.get("text") == "Submitted ✅", answer
    await bot.say(MERCHANT, "/newlisting", "Let's list your shop")  # the draft is gone
