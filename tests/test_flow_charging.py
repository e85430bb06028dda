"""Charging end to end (issue #4): the QR code decoded from the merchant's label is
what the user sends; Start switches a simulated plug on through a real mosquitto;
status; Stop; the order reaches the user, the merchant and the platform exactly
once. Also: a plug that never confirms, one that drops off, the broker and the bot
restarted mid-session, the window's end, a no-show, and bad tokens."""

import asyncio
import itertools
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hardware_bridge.port import DeviceRef
from models import Booking, BookingStatus, Charger, ChargingSession, Order, SessionStatus
from models.base import utcnow
from models.db import create_engine, create_session_factory
from services import bookings, cards, charging
from services.bookings import BookingRules
from services.cards import CardRole
from services.charging import ChargingRules
from services.tx import transaction
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import GROUP, BotHarness, current, start_api
from tests.plugs import SimPlug, SimShelly, SimTasmota
from tests.support.services import MosquittoServer
from tests.support.waiting import wait_until
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER, seed_listing
from tests.test_flow_qr import decode

_ids = itertools.count(1)
ROOT = Path(__file__).resolve().parent.parent
RULES = BookingRules(zone=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "en")
    )
    yield server
    await server.stop()


def harness(api: FakeBotAPI, url: str, broker: MosquittoServer) -> BotHarness:
    return BotHarness(
        api,
        url,
        mqtt_url=broker.url,
        scheduler_interval_seconds=0.3,
        device_confirm_seconds=2,
        device_offline_grace_seconds=1.5,
    )


@pytest.fixture
async def bot(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer
) -> AsyncIterator[BotHarness]:
    h = harness(api, database_url, broker)
    await h.start()
    yield h
    await h.stop()


@pytest.fixture
async def plugs() -> AsyncIterator[list[SimPlug]]:
    started: list[SimPlug] = []
    yield started
    for plug in started:
        await plug.stop()


# -- helpers -----------------------------------------------------------------------------


@asynccontextmanager
async def database(url: str) -> AsyncIterator[AsyncSession]:
    """A database session on the bot's database, with an engine of its own."""
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as db:
            yield db
    finally:
        await engine.dispose()


async def plug_for(
    family: str,
    url: str,
    broker: MosquittoServer,
    charger_id: int,
    plugs: list[SimPlug],
    **kw: float,
) -> SimPlug:
    """A started simulated plug, set as the charger's smart plug."""
    device_id = f"{family}-flow-{next(_ids)}"
    plug = (SimTasmota if family == "tasmota" else SimShelly)(broker.url, device_id, **kw)
    await plug.start()
    plugs.append(plug)
    async with database(url) as db, transaction(db):
        await db.execute(
            update(Charger)
            .where(Charger.id == charger_id)
            .values(plug_driver=family, plug_id=device_id)
        )
    return plug


async def accepted_booking(
    url: str, charger_id: int, user: int, start: datetime, end: datetime
) -> int:
    """An ACCEPTED booking; ``start`` may lie in the past (the services are told it is
    then), so a window can end a few seconds from now."""
    then = min(start, utcnow())
    async with database(url) as db:
        booking = await bookings.request(
            db,
            user_id=user,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=end,
            rules=RULES,
            now=then,
        )
        await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT, now=then)
        return booking.id


async def rows(url: str) -> tuple[list[ChargingSession], list[Order], list[Booking]]:
    async with database(url) as db:
        open_db = (await db.scalars(select(ChargingSession))).all()
        orders = (await db.scalars(select(Order))).all()
        booked = (await db.scalars(select(Booking))).all()
        return list(open_db), list(orders), list(booked)


async def until(check, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    await wait_until(check, timeout)


async def label_token(bot: BotHarness, url: str) -> tuple[int, str]:
    """Seed an approved listing; the token is read from the merchant's printed label."""
    after = bot.api.last_message_id(MERCHANT)
    charger_id = await seed_listing(bot, url)
    label = await bot.expect(MERCHANT, "Print this label", after, timeout=10)
    link = decode(bot.api, label)
    assert link.startswith("https://t.me/chargeshare_test_bot?start=")
    return charger_id, link.rsplit("=", 1)[1]


async def ready_to_charge(
    bot: BotHarness, url: str, broker: MosquittoServer, plugs: list[SimPlug], family: str
) -> tuple[int, str, SimPlug]:
    """An approved charger (its token read from the printed label), its simulated plug,
    and the rider's accepted booking for the coming hour."""
    charger_id, token = await label_token(bot, url)
    plug = await plug_for(family, url, broker, charger_id, plugs)
    now = utcnow()
    await accepted_booking(url, charger_id, RIDER, now, now + timedelta(hours=1))
    return charger_id, token, plug


async def scan_and_start(bot: BotHarness, user: int, token: str) -> dict:
    card = await bot.say(user, f"/start {token}", "press Start")
    after = bot.api.last_message_id(user)
    answer = await bot.press(user, user, card, "Start charging")
    assert "Switching on" in answer["text"]
    return await bot.expect(user, "Charging started", after, timeout=10)


def order_messages(api: FakeBotAPI, chat: int) -> list[dict]:
    return [m for m in api.bot_messages(chat) if "Order #" in plain(m)]


async def stop(bot: BotHarness, user: int, message: dict) -> dict:
    after = bot.api.last_message_id(user)
    await bot.press(user, user, message, "Stop charging")
    confirm = await bot.expect(user, "Stop charging now?", after)
    await bot.press(user, user, confirm, "Yes, stop now")
    return await bot.expect(user, "Power off at", after, timeout=10)


# -- the happy path ------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["tasmota", "shelly"])
async def test_scan_start_status_stop_order(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list, family: str
) -> None:
    api = bot.api
    charger_id, token = await label_token(bot, database_url)
    plug = await plug_for(family, database_url, broker, charger_id, plugs)
    now = utcnow()
    await accepted_booking(database_url, charger_id, RIDER, now, now + timedelta(hours=1))

    merchant_after = api.last_message_id(MERCHANT)
    started = await scan_and_start(bot, RIDER, token)
    assert plug.on, "the plug was switched on"
    assert "Your window ends at" in plain(started)
    await bot.expect(MERCHANT, "Charging started: booking", merchant_after)
    charges, orders, booked = await rows(database_url)
    assert [s.status for s in charges] == [SessionStatus.CHARGING]
    assert booked[0].status == BookingStatus.CHARGING and not orders

    # some energy to bill: an order keeps kWh to 3 decimals, so over 0.5 Wh since the
    # start reading (the simulated plug draws 2 kW: about a second after the start)
    start_kwh = charges[0].start_kwh
    since = start_kwh if start_kwh is not None else plug.energy_wh() / 1000
    await wait_until(lambda: plug.energy_wh() / 1000 >= since + 0.0006, what="energy drawn")
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, started, "Status")
    status = await bot.expect(RIDER, "Energy so far", after)
    assert "Cost so far" in plain(status)

    # a second "Stop charging now?" prompt, confirmed after the first: one order only
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, status, "Stop charging")
    first = await bot.expect(RIDER, "Stop charging now?", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, status, "Stop charging")
    second = await bot.expect(RIDER, "Stop charging now?", after)
    await bot.press(RIDER, RIDER, first, "Yes, stop now")
    await bot.expect(RIDER, "Power off at", after, timeout=10)
    answer = await bot.press(RIDER, RIDER, second, "Yes, stop now")
    assert "already ended" in answer["text"]
    # the other prompt says what the first said (a double tap changes nothing on screen)
    await wait_until(
        lambda: "Power off at" in plain(current(api, RIDER, second["message_id"])),
        what="the other prompt says what the first said",
    )
    assert not plug.on

    order = await bot.expect(RIDER, "Order #", after, timeout=10)
    text = plain(order)
    assert "stopped by the user" in text and "Duration: 1 min" in text
    assert "kWh" in text and "Cost: 0.04 CNY" in text  # 2.50/h for one started minute
    await bot.expect(MERCHANT, "Order #", merchant_after, timeout=10)
    await bot.expect(GROUP, "Order #", 0, timeout=10)
    await api.wait_idle()
    assert [len(order_messages(api, c)) for c in (RIDER, MERCHANT, GROUP)] == [1, 1, 1]
    charges, orders, booked = await rows(database_url)
    assert len(orders) == 1 and orders[0].energy_kwh is not None and orders[0].energy_kwh > 0
    assert charges[0].status == SessionStatus.COMPLETED and charges[0].power_off_confirmed
    assert booked[0].status == BookingStatus.COMPLETED

    # /bookings shows what it cost, not the estimate (issue #16)
    listed = await bot.say(RIDER, "/bookings", "Your bookings")
    assert "🏁 completed · 0.04 CNY" in plain(listed)

    # the same code scanned again: the booking is over, the charger free: Charge now
    # (walk-up, issue #15)
    await bot.say(RIDER, f"/start {token}", "Charge now?")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("family", ["tasmota", "shelly"])
async def test_the_order_bills_the_meter_read_with_the_power_commands(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list, family: str
) -> None:
    """Issue #17: the start and the final meter totals come with the power-on's and the
    power-off's own answers (the meter question pipelined behind the command); the
    plug sends no periodic report here, so nothing else could tell them. No state
    question follows the power-off."""
    charger_id, token = await label_token(bot, database_url)
    # 0.1 kWh a second, and a report period longer than the test
    plug = await plug_for(
        family, database_url, broker, charger_id, plugs, watts=360_000.0, tele_period=3600.0
    )
    now = utcnow()
    await accepted_booking(database_url, charger_id, RIDER, now, now + timedelta(hours=1))
    started = await scan_and_start(bot, RIDER, token)
    charges, _, _ = await rows(database_url)
    start_kwh = charges[0].start_kwh
    assert start_kwh is not None and start_kwh < 0.05  # read at the switch-on
    await wait_until(lambda: plug.energy_wh() / 1000 >= start_kwh + 0.2, what="energy drawn")

    after = bot.api.last_message_id(RIDER)
    await stop(bot, RIDER, started)
    await bot.expect(RIDER, "Order #", after, timeout=10)
    final = plug.energy_wh() / 1000  # off: the meter stands still
    _, orders, _ = await rows(database_url)
    assert orders[0].energy_kwh is not None
    assert float(orders[0].energy_kwh) == pytest.approx(final - start_kwh, abs=0.0011)
    # after the power-off, only the meter question that went with it
    said = [
        (topic.rsplit("/", 1)[-1], payload)
        for topic, payload, _ in plug.commands
        if not topic.endswith("/PulseTime")
    ]
    if family == "tasmota":
        off = max(i for i, c in enumerate(said) if c == ("POWER", b"OFF"))
        assert said[off + 1 :] == [("Status", b"8")]
    else:
        methods = [json.loads(payload)["method"] for _, payload in said]
        off = max(i for i, m in enumerate(methods) if m == "Switch.Set")
        assert methods[off + 1 :] == ["Switch.GetStatus"]


# -- devices that misbehave -------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_plug_that_never_confirms_bills_nothing_and_can_be_retried(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    _, token, plug = await ready_to_charge(bot, database_url, broker, plugs, "tasmota")
    plug.never_confirm = True

    card = await bot.say(RIDER, f"/start {token}", "press Start")
    after = bot.api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, card, "Start charging")
    refused = await bot.expect(RIDER, "did not confirm", after, timeout=10)
    assert "Nothing was billed" in plain(refused)
    charges, orders, booked = await rows(database_url)
    assert [s.status for s in charges] == [SessionStatus.FAILED]
    assert booked[0].status == BookingStatus.ACCEPTED and not orders

    plug.never_confirm = False  # the user checked the plug: Start again on the same card
    after = bot.api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, refused, "Start charging")
    await bot.expect(RIDER, "Charging started", after, timeout=10)
    assert plug.on


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_plug_offline_mid_session_closes_it_once(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    api = bot.api
    _, token, plug = await ready_to_charge(bot, database_url, broker, plugs, "shelly")
    merchant_after = api.last_message_id(MERCHANT)
    await scan_and_start(bot, RIDER, token)
    dropped_at = utcnow()
    await plug.drop_off()  # the broker publishes its last will (online: false)

    order = await bot.expect(RIDER, "Order #", 0, timeout=20)
    assert "the charger went offline" in plain(order)
    await bot.expect(MERCHANT, "the charger went offline", merchant_after, timeout=10)
    await api.wait_idle()
    assert [len(order_messages(api, c)) for c in (RIDER, MERCHANT, GROUP)] == [1, 1, 1]
    charges, orders, _ = await rows(database_url)
    assert len(orders) == 1 and charges[0].end_reason == "device_offline"
    # closed at the last moment the plug was heard, not when the will arrived
    assert orders[0].ended_at <= dropped_at + timedelta(seconds=1)

    # a Stop pressed afterwards changes nothing
    reply = await bot.say(RIDER, "/stop", "No charging session")
    assert reply


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_broker_restart_mid_session(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    # a grace that outlasts the restart however loaded the machine: the plug is back
    # in time, so the session must survive the broker's restart
    bot = BotHarness(
        api,
        database_url,
        mqtt_url=broker.url,
        scheduler_interval_seconds=0.3,
        device_confirm_seconds=2,
        device_offline_grace_seconds=30,
    )
    await bot.start()
    try:
        _, token, plug = await ready_to_charge(bot, database_url, broker, plugs, "tasmota")
        started = await scan_and_start(bot, RIDER, token)
        assert bot.app is not None
        bridge = bot.app.bridge
        client = bridge.client
        reconnects = client.reconnects

        broker.restart()
        await until(lambda: _true(client.reconnects > reconnects and client.connected), 20)
        await plug.wait_ready(20)
        device = DeviceRef("tasmota", plug.device_id)
        await until(lambda: _true(bridge.known(device).online is True), 20)
        await bot.api.wait_idle(quiet=0.5)  # a scheduler round or two: nothing happens
        charges, orders, _ = await rows(database_url)
        assert charges[0].status == SessionStatus.CHARGING and not orders and plug.on

        await stop(bot, RIDER, started)
        await bot.expect(RIDER, "Order #", 0, timeout=10)
        charges, orders, _ = await rows(database_url)
        assert len(orders) == 1 and not plug.on
    finally:
        await bot.stop()


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bot_restart_mid_session_goes_on_or_closes_once(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    api = bot.api
    _, token, plug = await ready_to_charge(bot, database_url, broker, plugs, "tasmota")
    started = await scan_and_start(bot, RIDER, token)

    await bot.restart()  # the plug stays on: the session goes on
    assert bot.app is not None
    bridge = bot.app.bridge
    # the new process reconciled the session with its plug, and then did nothing for a
    # scheduler round (ending the session would have told the rider)
    await until(lambda: _true(bridge.reread_count >= 1 and bridge.client.connected))
    await api.wait_idle(quiet=0.5)
    charges, orders, _ = await rows(database_url)
    assert charges[0].status == SessionStatus.CHARGING and not orders and plug.on
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, started, "Status")
    await bot.expect(RIDER, "Energy so far", after)

    await bot.stop()  # down, and meanwhile someone presses the plug's own button
    plug.set_relay(False)
    await bot.start()
    order = await bot.expect(RIDER, "Order #", after, timeout=15)
    assert "switched off by itself" in plain(order)
    await api.wait_idle()
    assert [len(order_messages(api, c)) for c in (RIDER, MERCHANT, GROUP)] == [1, 1, 1]
    _, orders, _ = await rows(database_url)
    assert len(orders) == 1


# -- time -----------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_window_end_warns_then_stops(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    charger_id, token = await label_token(bot, database_url)
    plug = await plug_for("shelly", database_url, broker, charger_id, plugs)
    now = utcnow()
    end = now + timedelta(seconds=6)
    await accepted_booking(database_url, charger_id, RIDER, end - timedelta(minutes=20), end)
    after = bot.api.last_message_id(RIDER)
    await scan_and_start(bot, RIDER, token)
    warning = await bot.expect(RIDER, "in about 5 minutes", after, timeout=5)
    assert buttons(warning)  # Status and Stop while it runs
    order = await bot.expect(RIDER, "Order #", after, timeout=15)
    assert "the booked window ended" in plain(order)
    # the warning keeps its words, and says how it ended, with no buttons left
    await shows(bot.api, RIDER, warning, "in about 5 minutes", "🧾 Finished: order #1")
    assert not plug.on
    _, orders, _ = await rows(database_url)
    assert len(orders) == 1 and abs((orders[0].ended_at - end).total_seconds()) < 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_show_and_refusals(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    api = bot.api
    charger_id, token = await label_token(bot, database_url)
    await plug_for("tasmota", database_url, broker, charger_id, plugs)

    # forged and unknown tokens; a user with no booking of the free charger is offered
    # Charge now (walk-up, issue #15)
    await bot.say(RIDER, "/start not-a-real-token-at-all", "not valid")
    await bot.say(OTHER_RIDER, f"/start {token}", "Charge now?")

    # too early: a window in two hours
    now = utcnow()
    await accepted_booking(
        database_url, charger_id, RIDER, now + timedelta(hours=2), now + timedelta(hours=3)
    )
    await bot.say(RIDER, f"/start {token}", "Too early")

    # a window that ends in a moment, never started: no-show, both sides told
    end = now + timedelta(seconds=2)
    await accepted_booking(database_url, charger_id, OTHER_RIDER, end - timedelta(minutes=15), end)
    merchant_after = api.last_message_id(MERCHANT)
    await bot.expect(MERCHANT, "no-show", merchant_after, timeout=10)
    await bot.expect(OTHER_RIDER, "did not start charging within your window", 0, timeout=10)
    # scanned again: the charger is free for the next two hours, so Charge now
    await bot.say(OTHER_RIDER, f"/start {token}", "Charge now?")

    # a renewed code: the old one stops working
    overview = await bot.say(MERCHANT, "/listings", "Your listings")
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, overview, "#1 Volt Café")
    detail = await bot.expect(MERCHANT, "QR labels", after)
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, detail, "QR labels")
    label = await bot.expect(MERCHANT, "Print this label", after)
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, label, "Renew this QR code")
    confirm = await bot.expect(MERCHANT, "stops working at once", after)
    await bot.press(MERCHANT, MERCHANT, confirm, "Yes, renew it")
    await bot.expect(MERCHANT, "Print this label", after)
    await bot.say(RIDER, f"/start {token}", "not valid")

    # a forged Start button for someone else's booking
    open_db, _, booked = await rows(database_url)
    theirs = next(b for b in booked if b.user_id == RIDER)
    hello = await bot.say(OTHER_RIDER, "/help", "ChargeShare")
    answer = await api.wait_for_callback_answer(
        api.press(OTHER_RIDER, OTHER_RIDER, hello["message_id"], f"ch:start:{theirs.id}")
    )
    assert answer["show_alert"] and "not yours" in answer["text"]
    assert not open_db


# -- a real crash ---------------------------------------------------------------------------


async def _bot_process(api: FakeBotAPI, url: str, broker: MosquittoServer, cwd: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "DATABASE_", "MQTT_", "TELEGRAM_", "MODERATION_"))
    }
    env |= {
        "BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": api.url,
        "DATABASE_URL": url,
        "MQTT_URL": broker.url,
        "MODERATION_CHAT_ID": str(GROUP),
        "ADMIN_IDS": "901,902",
        "SCHEDULER_INTERVAL_SECONDS": "0.3",
        "DEVICE_CONFIRM_SECONDS": "2",
        "PYTHONPATH": str(ROOT),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bot_killed_mid_session_goes_on_with_one_order(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer, plugs: list, tmp_path: Path
) -> None:
    """`python -m bot` killed with SIGKILL while charging: the next process carries
    the session on (the plug stayed on), and Stop makes exactly one order."""
    driver = BotHarness(api, database_url)  # only its say/expect/press helpers
    first = await _bot_process(api, database_url, broker, tmp_path)
    second = None
    try:
        await api.wait_for_poller(timeout=30)
        charger_id, token = await label_token(driver, database_url)
        plug = await plug_for("tasmota", database_url, broker, charger_id, plugs)
        now = utcnow()
        await accepted_booking(database_url, charger_id, RIDER, now, now + timedelta(hours=1))
        started = await scan_and_start(driver, RIDER, token)

        first.kill()
        await first.wait()
        assert plug.on  # the device keeps the power on (its failsafe is armed)
        second = await _bot_process(api, database_url, broker, tmp_path)
        after = api.last_message_id(RIDER)
        query = api.press_button(RIDER, RIDER, started["message_id"], "Status")
        await api.wait_for_callback_answer(query, timeout=30)  # the new process starts up
        await driver.expect(RIDER, "Energy so far", after, timeout=10)
        charges, orders, _ = await rows(database_url)
        assert charges[0].status == SessionStatus.CHARGING and not orders

        await stop(driver, RIDER, started)
        await driver.expect(RIDER, "Order #", after, timeout=10)
        await driver.expect(GROUP, "Order #", 0, timeout=10)
        await api.wait_idle()
        assert [len(order_messages(api, c)) for c in (RIDER, MERCHANT, GROUP)] == [1, 1, 1]
        assert not plug.on
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGINT)
                await asyncio.wait_for(process.wait(), 20)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_merchant_closes_a_stuck_session_without_the_plug(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    """The plug stops answering but stays connected: the merchant's Close session ends
    the session anyway, billed up to the press, and says the plug did not confirm."""
    api = bot.api
    _, token, plug = await ready_to_charge(bot, database_url, broker, plugs, "tasmota")
    merchant_after = api.last_message_id(MERCHANT)
    await scan_and_start(bot, RIDER, token)
    card = await bot.expect(MERCHANT, "Charging started: booking", merchant_after)
    plug.never_confirm = True  # stuck relay: commands are ignored

    # a stranger forging the button in their own chat changes nothing
    hello = await bot.say(OTHER_RIDER, "/help", "ChargeShare")
    answer = await api.wait_for_callback_answer(
        api.press(OTHER_RIDER, OTHER_RIDER, hello["message_id"], "ch:stop_yes:1")
    )
    assert answer["show_alert"] and "not yours" in answer["text"]

    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, card, "Close session")
    confirm = await bot.expect(MERCHANT, "Stop charging now?", after)
    await bot.press(MERCHANT, MERCHANT, confirm, "Yes, stop now")
    await bot.expect(MERCHANT, "did not confirm switching off", after, timeout=10)
    order = await bot.expect(RIDER, "Order #", 0, timeout=10)
    assert "closed by the merchant" in plain(order)
    # the rider is told what it means for them, not to check a plug that is not theirs
    assert "billed only up to" in plain(order) and "Nothing for you to do" in plain(order)
    assert "please check it" not in plain(order)
    merchant_order = await bot.expect(MERCHANT, "Order #", after, timeout=10)
    assert "did not confirm switching off" in plain(merchant_order)
    assert "please check it now" in plain(merchant_order)
    _, orders, _ = await rows(database_url)
    assert len(orders) == 1 and orders[0].end_reason == "merchant"


# -- the cards (issue #16) ---------------------------------------------------------------


async def test_charging_cards_live_then_finished_on_both_sides(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    """While it runs, the rider's card edits itself (power now, energy, cost so far,
    time left) and the merchant's carries a live line; Stop ends both in the order."""
    bot = BotHarness(
        api,
        database_url,
        mqtt_url=broker.url,
        device_confirm_seconds=2,
        scheduler_interval_seconds=0.3,
        charging_refresh_seconds=1,
    )
    await bot.start()
    try:
        _, token, _plug = await ready_to_charge(bot, database_url, broker, plugs, "tasmota")
        merchant_after = api.last_message_id(MERCHANT)
        started = await scan_and_start(bot, RIDER, token)
        merchant = await bot.expect(MERCHANT, "Charging started: booking", merchant_after)
        live = await shows(api, RIDER, started, "Power now: 2000 W", "min left", live=True)
        assert "Energy so far" in plain(live) and "Cost so far" in plain(live)
        assert "▓" in plain(live) or "░" in plain(live)
        await shows(api, MERCHANT, merchant, "📈 2000 W", "so far", live=True)

        await stop(bot, RIDER, live)
        done = await shows(api, RIDER, started, "🧾 Finished: order #1, 0.04 CNY")
        assert "Power now" not in plain(done)
        await shows(api, MERCHANT, merchant, "🧾 Finished: order #1, 0.04 CNY")
    finally:
        await bot.stop()


async def test_a_start_that_never_finished_ends_in_words(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    """ "Switching the power on…" follows its session: when the bot died at Start and
    recovery fails the start (nobody waits on the button), the message says so, with
    Start again; it is not left switching on forever."""
    await ready_to_charge(bot, database_url, broker, plugs, "tasmota")
    async with database(database_url) as db:
        booking_id = (await db.scalars(select(Booking.id))).one()
        # what the dead process left: a STARTING session and its progress message
        charge = await charging.begin_start(
            db, booking_id=booking_id, user_id=RIDER, rules=ChargingRules(RULES.zone, GROUP)
        )
    assert bot.app is not None
    switching = await bot.app.bot.send_message(RIDER, "⏳ Switching the power on…")
    async with database(database_url) as db:
        await cards.record(
            db, CardRole.CHARGE, charge.id, RIDER, switching.message_id, shown="starting"
        )
        await charging.fail_start(db, session_id=charge.id, why="stale", notify_user=True)
    message = {"message_id": switching.message_id}
    ended = await shows(bot.api, RIDER, message, "⚠️ Not started", live=True)
    assert "nothing was billed" in plain(ended) and buttons(ended) == [["⚡ Start charging"]]


async def shows(api: FakeBotAPI, chat: int, message: dict, *words: str, live: bool = False) -> dict:
    """Wait until the message says all ``words`` (and has buttons only if ``live``)."""

    def now() -> dict:
        return current(api, chat, message["message_id"])

    def true() -> bool:
        text = plain(now())
        return all(w in text for w in words) and bool(buttons(now())) == live

    await wait_until(true, 10, what=f"message {message['message_id']} saying {words}")
    return now()
