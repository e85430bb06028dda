"""The wizard's manners: back, keep, cancel, resume, restarts; the admins' typed
reason; delivery through Telegram's flood control; the language switch."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from models import FsmRecord, Listing, OutboxMessage
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api
from tests.support.waiting import wait_until
from tests.test_flow_listing import MERCHANT, fill_charger, fill_shop


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((MERCHANT, "Mia", "en"), (2002, "李雷", "zh-hans"))
    yield server
    await server.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chargeshare.db'}"


@pytest.fixture
async def bot(api: FakeBotAPI, sqlite_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, sqlite_url)
    await harness.start()
    yield harness
    await harness.stop()


async def _count(url: str, model) -> int:
    engine = create_engine(url)
    async with create_session_factory(engine)() as db:
        count = await db.scalar(select(func.count()).select_from(model))
    await engine.dispose()
    return count or 0


async def test_restart_mid_wizard_keeps_the_answers(bot: BotHarness) -> None:
    api = bot.api
    await bot.say(MERCHANT, "/newlisting", "Contact phone")
    await bot.say(MERCHANT, "+86 138 0000 1111", "Shop name")
    await bot.say(MERCHANT, "Corner Charge", "photo of the storefront")

    await bot.restart()  # the process goes away between two answers

    after = api.last_message_id(MERCHANT)
    api.send_photo(MERCHANT, MERCHANT)
    await bot.expect(MERCHANT, "Shop area", after)
    await bot.say(MERCHANT, "30", "Location")
    # an address typed first is kept, and the pin is asked for
    await bot.say(MERCHANT, "88 Huaihai Rd", "Address noted: 88 Huaihai Rd")
    after = api.last_message_id(MERCHANT)
    api.send_location(MERCHANT, MERCHANT, 31.22, 121.46)
    await bot.expect(MERCHANT, "Charger 1", after)  # no address question: it is known
    await fill_charger(bot, 1, "Tasmota", "tasmota_B2")
    summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    text = plain(summary)
    assert "Corner Charge" in text and "+8613800001111" in text and "88 Huaihai Rd" in text


async def test_back_keep_and_cancel(bot: BotHarness, sqlite_url: str) -> None:
    await bot.say(MERCHANT, "/newlisting", "Contact phone")
    await bot.say(MERCHANT, "⬅️ Back", "first question")
    await bot.say(MERCHANT, "call me maybe", "not a phone number")  # re-asked, nothing lost
    await bot.say(MERCHANT, "13800002222", "Shop name")
    await bot.say(MERCHANT, "X", "between 2 and 64 characters")
    prompt = await bot.say(MERCHANT, "⬅️ Back", "Contact phone")
    assert ["↩️ Keep current"] in bot.api.reply_keyboard(MERCHANT), plain(prompt)
    await bot.say(MERCHANT, "↩️ Keep current", "Shop name")
    await bot.say(MERCHANT, "Kept Shop", "photo of the storefront")
    # /newlisting again offers to continue rather than throwing the answers away
    offer = await bot.say(MERCHANT, "/newlisting", "unfinished listing")
    after = bot.api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, offer, "Continue")
    await bot.expect(MERCHANT, "photo of the storefront", after)
    await bot.say(MERCHANT, "✖️ Cancel", "nothing was submitted")
    await bot.say(MERCHANT, "/cancel", "nothing to cancel")
    assert await _count(sqlite_url, FsmRecord) == 0
    assert await _count(sqlite_url, Listing) == 0


async def _submitted_card(bot: BotHarness) -> dict:
    await fill_shop(bot)
    await fill_charger(bot, 1, "Tasmota", "tasmota_A1")
    summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    cursor = bot.api.last_message_id(GROUP)
    await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    return await bot.expect(GROUP, "New listing", cursor, timeout=10)


async def test_typed_reason_and_stale_summary(bot: BotHarness) -> None:
    api = bot.api
    card = await _submitted_card(bot)
    await bot.press(GROUP, ADMINS[0], card, "Reject")
    card = await bot.expect(GROUP, "Other reason", 0)
    cursor = api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[0], card, "Other reason")
    prompt = await bot.expect(GROUP, "reply to this message", cursor)
    after = api.last_message_id(MERCHANT)
    api.send_text(
        GROUP,
        ADMINS[0],
        "Please show the <b>socket</b> itself",
        reply_to_message_id=prompt["message_id"],
    )
    await bot.expect(GROUP, "rejected; the merchant gets your reason", cursor)
    notice = await bot.expect(MERCHANT, "was not approved", after)
    assert "Please show the <b>socket</b> itself" in plain(notice)  # escaped, shown as typed
    # the old summary's Submit button is stale now: an alert, nothing submitted twice
    summary = next(
        m for m in api.bot_messages(MERCHANT) if "Volt Café" in plain(m) and "Charger 1" in plain(m)
    )
    query = api.press(MERCHANT, MERCHANT, summary["message_id"], "wz:submit:-1")
    answer = await api.wait_for_callback_answer(query)
    assert answer["show_alert"] and "out of date" in answer["text"]


async def test_flood_control_is_waited_out(bot: BotHarness, sqlite_url: str) -> None:
    bot.api.fail_next(
        "sendPhoto", error_code=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    card = await _submitted_card(bot)
    assert "Volt Café" in plain(card)
    assert len(bot.api.calls("sendPhoto")) >= 1
    engine = create_engine(sqlite_url)
    open_db = create_session_factory(engine)
    query = select(OutboxMessage).where(OutboxMessage.kind == "review_card")
    row: OutboxMessage | None = None

    async def sent() -> bool:  # the sender marks the row right after Telegram accepted it
        nonlocal row
        async with open_db() as db:
            row = (await db.scalars(query)).one()
        return row.sent_at is not None

    await wait_until(sent, what="the review card marked sent")
    assert row is not None and row.sent_at is not None
    assert row.attempts == 1  # a 429 is not a failed attempt
    await engine.dispose()


async def test_chinese_user_and_language_switch(bot: BotHarness) -> None:
    zh_user = 2002
    reply = await bot.say(zh_user, "/newlisting", "联系电话")
    assert "📱" in plain(reply)
    picker = await bot.say(zh_user, "/language", "English")
    await bot.press(zh_user, zh_user, picker, "English")
    await bot.expect(zh_user, "Language set: English", 0)
    await bot.say(zh_user, "/help", "list a shop")


async def test_non_admin_cannot_use_pending_and_admin_sees_queue(bot: BotHarness) -> None:
    await _submitted_card(bot)
    reply = await bot.say_in_group(MERCHANT, "/pending", "Only the platform's admins")
    assert reply
    listing = await bot.say_in_group(ADMINS[1], "/pending", "Waiting for review: 1")
    assert buttons(listing) == [["Card #1"]]
    cursor = bot.api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[1], listing, "Card #1")
    await bot.expect(GROUP, "New listing", cursor)
    await asyncio.sleep(0)


async def test_my_listings_pause_resume_and_forged_buttons(
    bot: BotHarness, sqlite_url: str
) -> None:
    api = bot.api
    card = await _submitted_card(bot)
    after = api.last_message_id(MERCHANT)
    await bot.press(GROUP, ADMINS[0], card, "Approve")
    await bot.expect(MERCHANT, "is approved", after)

    overview = await bot.say(MERCHANT, "/listings", "Your listings")
    assert "#1 Volt Café: ✅ approved" in plain(overview)
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, overview, "#1 Volt Café")
    detail = await bot.expect(MERCHANT, "Pause", after)
    answer = await bot.press(MERCHANT, MERCHANT, detail, "Pause")
    assert "Paused" in answer["text"]
    detail = await bot.expect(MERCHANT, "Resume", after)
    assert "paused" in plain(detail)

    # another user forges the merchant's buttons: an alert, nothing changes
    api.add_user(3003, "Eve")
    for data in ("ls:resume:1", "ls:edit:1", "ls:open:1"):
        # the stranger presses in their own chat with the merchant's listing id
        decoy = await bot.say(3003, "/listings", "no listings yet")
        query = api.press(3003, 3003, decoy["message_id"], data)
        answer = await api.wait_for_callback_answer(query)
        assert answer.get("show_alert"), data
    engine = create_engine(sqlite_url)
    async with create_session_factory(engine)() as db:
        listing = (await db.scalars(select(Listing))).one()
        assert listing.paused and listing.published
    await engine.dispose()

    answer = await bot.press(MERCHANT, MERCHANT, detail, "Resume")
    assert "Resumed" in answer["text"]

    # an edit of the approved listing: under review, the old version stays public
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, await bot.expect(MERCHANT, "Pause", after - 1), "Edit")
    summary = await bot.expect(MERCHANT, "Submit for review", after)
    await bot.press(MERCHANT, MERCHANT, summary, "Edit")
    summary = await bot.expect(MERCHANT, "🏪 Shop name", after)
    await bot.press(MERCHANT, MERCHANT, summary, "🏪 Shop name")
    await bot.say(MERCHANT, "Volt Café Plus", "Submit for review")
    summary = api.bot_messages(MERCHANT)[-1]
    cursor = api.last_message_id(GROUP)
    await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    await bot.expect(GROUP, "Edited listing #1", cursor)
    overview = await bot.say(MERCHANT, "/listings", "Your listings")
    assert "under review · the approved version stays public meanwhile" in plain(overview)


async def test_chatter_and_commands_are_not_answers(bot: BotHarness, sqlite_url: str) -> None:
    api = bot.api
    card = await _submitted_card(bot)
    assert "<b>" not in plain(card)  # our own markup is rendered, not shown as text
    await bot.press(GROUP, ADMINS[0], card, "Reject")
    card = await bot.expect(GROUP, "Other reason", 0)
    cursor = api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[0], card, "Other reason")
    prompt = await bot.expect(GROUP, "reply to this message", cursor)
    # the admin talks in the group without replying: that is not the reason
    api.send_text(GROUP, ADMINS[0], "hmm, let me look at the photo first")
    await api.wait_idle(quiet=0.3)
    engine = create_engine(sqlite_url)
    async with create_session_factory(engine)() as db:
        listing = (await db.scalars(select(Listing))).one()
        assert listing.status.value == "pending"
    await engine.dispose()
    api.send_text(GROUP, ADMINS[0], "Blurry photo", reply_to_message_id=prompt["message_id"])
    await bot.expect(GROUP, "rejected; the merchant gets your reason", cursor)

    # a command typed mid-wizard runs the command and keeps the wizard's place
    await bot.say(MERCHANT, "/newlisting", "Contact phone")
    await bot.say(MERCHANT, "+8613800003333", "Shop name")
    await bot.say(MERCHANT, "/listings", "Your listings")
    offer = await bot.say(MERCHANT, "/newlisting", "unfinished listing")
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, offer, "Continue")
    await bot.expect(MERCHANT, "Shop name", after)


async def test_a_half_filled_charger_is_kept_and_named_on_submit(bot: BotHarness) -> None:
    await fill_shop(bot)
    await bot.say(MERCHANT, "Household socket", "which devices")
    await bot.say(MERCHANT, "E-bike", "Selected: E-bike")
    await bot.say(MERCHANT, "✅ Done", "models")
    await bot.say(MERCHANT, "Any model", "Supply device kind")
    # back, back, back to the charger's first question and beyond: the answers stay
    await bot.say(MERCHANT, "⬅️ Back", "models")
    await bot.say(MERCHANT, "⬅️ Back", "which devices")
    await bot.say(MERCHANT, "⬅️ Back", "charging method")
    await bot.say(MERCHANT, "⬅️ Back", "Add another")
    summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    answer = await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    assert answer["show_alert"] and "not complete yet: ✏️ Charger 1" in answer["text"]
