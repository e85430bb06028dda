"""Pairing a plug in the listing wizard (issue #15), end to end: the real bot over the
local Bot API server, a real mosquitto and simulated plugs.

- a plug online on the broker is paired by switching it (on for a moment, off), each
  step confirmed by the device's own report; the summary and the review card say
  "paired ✓ at …";
- a plug that does not answer is paired by its button, or kept for later;
- "No plug yet": the bot names the plug, makes its own broker account (mosquitto's
  dynamic security plugin), the plug logs in with it, and the Pair button under the
  instructions makes the approved charger bookable; anyone else's press pairs nothing.
"""

import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from models import Charger
from models.db import create_engine, create_session_factory
from services import bookings
from services.errors import InvalidInput
from tests.botapi import FakeBotAPI, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api
from tests.plugs import SimTasmota
from tests.support.services import MosquittoServer
from tests.test_dynsec import ADMIN, ADMIN_PASSWORD, accounts, dynsec_broker
from tests.test_flow_listing import fill_charger, fill_shop

MERCHANT, STRANGER = 1001, 555
FAST = {"pair_pulse_seconds": 0.3, "pair_button_seconds": 20}


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((MERCHANT, "Mia", "en"), (STRANGER, "Sam", "en"))
    yield server
    await server.stop()


@pytest.fixture
async def bot(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url, mqtt_url=broker.url, **FAST)
    await harness.start()
    yield harness
    await harness.stop()


async def chargers(url: str) -> list[Charger]:
    engine = create_engine(url)
    async with create_session_factory(engine)() as db:
        rows = list((await db.scalars(select(Charger).order_by(Charger.id))).all())
    await engine.dispose()
    return rows


async def review_text(bot: BotHarness, after: int) -> tuple[dict, str]:
    """The review card in the group and all it says: its caption, and the fields in the
    reply below it when the caption cannot hold them."""
    card = await bot.expect(GROUP, "New listing", after, timeout=10)
    if "in the reply below" in plain(card):
        await bot.expect(GROUP, "Charger 1", after, timeout=10)
    said = [plain(m) for m in bot.api.history(GROUP)[after:]]
    return card, "\n".join(said)


async def submit_and_approve(bot: BotHarness) -> str:
    """Summary → Submit → the card in the group → Approve; returns what the card says."""
    summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    after = bot.api.last_message_id(GROUP)
    await bot.press(MERCHANT, MERCHANT, summary, "Submit")
    card, text = await review_text(bot, after)
    after = bot.api.last_message_id(MERCHANT)
    await bot.press(GROUP, ADMINS[0], card, "Approve")
    await bot.expect(MERCHANT, "is approved", after, timeout=10)
    return text


async def charger_questions(bot: BotHarness, user: int = MERCHANT) -> None:
    """Charger 1's questions up to its plug id."""
    for answer, expect in (
        ("Household socket", "which devices"),
        ("E-bike", "Selected: E-bike"),
        ("✅ Done", "models"),
        ("Any model", "Supply device kind"),
        ("Smart socket", "Supply device model"),
        ("Sonoff S31", "Rated power"),
        ("2.2", "When can it be used"),
        ("Every day 08:00-22:00", "per hour"),
        ("per hour", "Price"),
        ("2.5", "smart plug"),
        ("Tasmota", "Tasmota MQTT topic"),
    ):
        await bot.say(user, answer, expect)


async def test_a_plug_online_is_paired_by_switching_it(
    bot: BotHarness, broker: MosquittoServer, database_url: str
) -> None:
    plug = SimTasmota(broker.url, "tasmota_pair_1")
    await plug.start()
    try:
        await fill_shop(bot)
        await fill_charger(bot, 1, "Tasmota", "tasmota_pair_1", paired=True)
        # switched on, then off: each command answered by the plug, and left off
        powers = [p for t, p, _ in plug.commands if t.endswith("/POWER") and p]
        assert powers[:2] == [b"ON", b"OFF"] and not plug.on
        summary = await bot.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
        assert "paired ✓ at" in plain(summary)
        after = bot.api.last_message_id(GROUP)
        await bot.press(MERCHANT, MERCHANT, summary, "Submit")
        card, text = await review_text(bot, after)
        assert "tasmota_pair_1 · paired ✓ at" in text
        after = bot.api.last_message_id(MERCHANT)
        await bot.press(GROUP, ADMINS[0], card, "Approve")
        await bot.expect(MERCHANT, "is approved", after, timeout=10)
    finally:
        await plug.stop()
    (charger,) = await chargers(database_url)
    assert charger.paired_at is not None


async def test_a_plug_that_does_not_switch_is_paired_by_its_button(
    bot: BotHarness, broker: MosquittoServer
) -> None:
    plug = SimTasmota(broker.url, "tasmota_button_1")
    plug.never_confirm = True  # connected, but its relay commands go unanswered
    await plug.start()
    try:
        await fill_shop(bot)
        await charger_questions(bot)
        after = bot.api.last_message_id(MERCHANT)
        bot.api.send_text(MERCHANT, MERCHANT, "tasmota_button_1")
        failed = await bot.expect(MERCHANT, "Pair the plug now", after, timeout=30)
        assert "I'll press the plug's button" in str(failed)  # the reply keyboard
        await bot.say(MERCHANT, "what?", "tap one of the buttons")  # bad input: stays
        after = bot.api.last_message_id(MERCHANT)
        bot.api.send_text(MERCHANT, MERCHANT, "👆 I'll press the plug's button")
        await bot.expect(MERCHANT, "Press the button on plug", after, timeout=10)
        await plug.press_button()
        await bot.expect(MERCHANT, "is paired", after, timeout=20)
        await bot.expect(MERCHANT, "Add another", after, timeout=10)
    finally:
        await plug.stop()


async def test_no_plug_yet_then_paired_with_its_own_broker_account(
    api: FakeBotAPI, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = dynsec_broker(tmp_path_factory.mktemp("dynsec-flow"))
    try:
        # the bots' own account on that broker: all topics (deploy/README.md's setup)
        await accounts(server)._send([
            {"command": "createRole", "rolename": "bots"},
            {"command": "addRoleACL", "rolename": "bots", "acltype": "publishClientSend",
             "topic": "#", "allow": True},
            {"command": "addRoleACL", "rolename": "bots", "acltype": "subscribePattern",
             "topic": "#", "allow": True},
            {"command": "createClient", "username": "chargeshare", "password": "bots-pw",
             "roles": [{"rolename": "bots"}]},
        ])  # fmt: skip
        harness = BotHarness(
            api,
            database_url,
            mqtt_url=f"mqtt://chargeshare:bots-pw@{server.host}:{server.port}",
            mqtt_dynsec=True,
            mqtt_dynsec_username=ADMIN,
            mqtt_dynsec_password=ADMIN_PASSWORD,
            mqtt_plug_host="plugs.example.com",
            **FAST,
        )
        await harness.start()
        try:
            await _no_plug_yet(harness, server, database_url)
        finally:
            await harness.stop()
    finally:
        server.stop()


async def _no_plug_yet(bot: BotHarness, server: MosquittoServer, database_url: str) -> None:
    api = bot.api
    await fill_shop(bot)
    await charger_questions(bot)
    after = api.last_message_id(MERCHANT)
    api.send_text(MERCHANT, MERCHANT, "🕓 No plug yet")
    setup = await bot.expect(MERCHANT, "Setting up a Tasmota plug", after, timeout=20)
    await bot.expect(MERCHANT, "Add another", after)
    text = plain(setup)
    assert "plugs.example.com" in text and "8883" in text
    match = re.search(r"User: (cs-[a-z0-9]+) · Password: (\S+) \(shown only", text)
    assert match is not None, text
    plug_id, password = match.groups()
    assert f"Topic: {plug_id}" in text

    text = await submit_and_approve(bot)
    assert f"{plug_id} · not paired yet: not bookable" in text
    (charger,) = await chargers(database_url)
    assert charger.paired_at is None and charger.plug_id == plug_id
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        with pytest.raises(InvalidInput) as refused:
            await bookings.bookable_charger(db, charger.id)
        assert refused.value.key == "pairing.err_not_bookable"

    # the plug, set up as told: it logs in with its own account
    plug = SimTasmota(f"mqtt://{plug_id}:{password}@{server.host}:{server.port}", plug_id)
    await plug.start()
    try:
        # the Pair button's data pressed by someone else (forged in their chat): nothing
        data = setup["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        hello = await bot.say(STRANGER, "/start", "ChargeShare")
        answer = await api.wait_for_callback_answer(
            api.press(STRANGER, STRANGER, hello["message_id"], data)
        )
        assert answer["show_alert"] and "not one of your chargers" in answer["text"]
        after = api.last_message_id(MERCHANT)
        await bot.press(MERCHANT, MERCHANT, setup, "Pair plug")
        await bot.expect(MERCHANT, "can be booked now", after, timeout=30)
        assert not plug.on
    finally:
        await plug.stop()
    (charger,) = await chargers(database_url)
    assert charger.paired_at is not None
    async with create_session_factory(engine)() as db:
        assert (await bookings.bookable_charger(db, charger.id)).id == charger.id
    await engine.dispose()
