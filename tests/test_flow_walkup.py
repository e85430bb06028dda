"""Walk-up charging end to end (issue #15), over the local Bot API server and a real
mosquitto with simulated plugs: a rider scans the code read from the merchant's label
with no booking, picks Charge now "until full", starts, the plug fills up (its power
falls to a trickle) and the order ends as full; a charger whose merchant accepts
walk-ups by hand, with Extend on the charging card; two riders pressing at once; a
plug that does not meter power offers no "until full"."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from models import Booking, BookingStatus, Charger, ChargingSession, Order
from services.tx import transaction
from tests.botapi import FakeBotAPI, plain
from tests.harness import BotHarness, start_api
from tests.plugs import SimPlug, SimShelly
from tests.support.services import MosquittoServer
from tests.support.waiting import wait_until
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER
from tests.test_flow_charging import database, harness, label_token, plug_for
from ui.callbacks import ChargerSetCb, ExtendCb, WalkupSetting


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "en")
    )
    yield server
    await server.stop()


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


async def set_charger(url: str, charger_id: int, **values: object) -> None:
    async with database(url) as db, transaction(db):
        await db.execute(update(Charger).where(Charger.id == charger_id).values(**values))


async def charger_row(url: str, charger_id: int) -> Charger:
    async with database(url) as db:
        found = await db.get(Charger, charger_id)
        assert found is not None
        return found


async def walkup_bookings(url: str) -> list[Booking]:
    async with database(url) as db:
        return list((await db.scalars(select(Booking).order_by(Booking.id))).all())


async def bot_sessions(url: str) -> list[int]:
    async with database(url) as db:
        return list((await db.scalars(select(ChargingSession.id))).all())


async def metering(url: str, charger_id: int) -> None:
    """The plug's telemetry carried a power reading: the bot marks its charger."""

    async def marked() -> bool:
        return (await charger_row(url, charger_id)).meters_power

    await wait_until(marked, 10, what="the plug marked as metering power")


@pytest.mark.parametrize("family", ["tasmota", "shelly"])
async def test_walk_up_scan_charge_until_full_and_the_order(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list, family: str
) -> None:
    api = bot.api
    charger_id, token = await label_token(bot, database_url)
    plug = await plug_for(family, database_url, broker, charger_id, plugs)
    plug.watts = 60.0  # an e-bike battery charging
    await metering(database_url, charger_id)
    # "full" as soon as the power is under 10 W after drawing over it (the minutes
    # are the service tests' matter)
    await set_charger(database_url, charger_id, full_minutes=0)

    card = await bot.say(RIDER, f"/start {token}", "Charge now?")
    text = plain(card)
    assert "Volt Café" in text and "You can start at once" in text
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert [label.split(" · ")[0] for label in labels[:3]] == ["30 min", "60 min", "120 min"]
    assert "Until full" in labels[3] and len(labels) == 4, labels
    assert "1.25 CNY" in labels[0]  # 30 min at 2.50 CNY/h

    after = api.last_message_id(RIDER)
    merchant_after = api.last_message_id(MERCHANT)
    await bot.press(RIDER, RIDER, card, "Until full")
    booked = await bot.expect(RIDER, "Booked now", after)
    assert "until full" in plain(booked)
    [booking] = await walkup_bookings(database_url)
    assert booking.status == BookingStatus.ACCEPTED and booking.walkup and booking.until_full

    await bot.press(RIDER, RIDER, booked, "Start charging")
    started = await bot.expect(RIDER, "Charging until full", after, timeout=10)
    assert plug.on
    labels = [b["text"] for row in started["reply_markup"]["inline_keyboard"] for b in row]
    assert any("➕ 30 min" in label for label in labels), labels  # Extend
    await bot.expect(MERCHANT, "Charging started: booking", merchant_after, timeout=10)

    # the battery charges (the bot has seen it draw power), then fills up: the power
    # falls to a trickle
    async def drew() -> bool:
        async with database(database_url) as db:
            return bool(await db.scalar(select(ChargingSession.drew_power)))

    await wait_until(drew, 10, what="the session seen drawing power")
    plug.watts = 2.0
    order = await bot.expect(RIDER, "Order #", after, timeout=20)
    assert "the battery was full" in plain(order)
    assert not plug.on
    async with database(database_url) as db:
        [made] = (await db.scalars(select(Order))).all()
        assert made.end_reason == "full"
        assert (await db.get(Booking, booking.id)).status == BookingStatus.COMPLETED
    await bot.expect(MERCHANT, "Order #", merchant_after, timeout=10)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_walk_up_asked_of_the_merchant_then_extended(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    api = bot.api
    charger_id, token = await label_token(bot, database_url)
    plug = await plug_for("tasmota", database_url, broker, charger_id, plugs)
    # the merchant turns "accept walk-ups automatically" off in /listings
    overview = await bot.say(MERCHANT, "/listings", "Your listings")
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, overview, "#1 Volt Café")
    detail = await bot.expect(MERCHANT, "Walk-up & full", after)
    await bot.press(MERCHANT, MERCHANT, detail, "Walk-up & full")
    panel = await bot.expect(MERCHANT, "accepted automatically", after)
    assert "under 10 W for 3 min" in plain(panel)
    # a forged button from someone else changes nothing
    hello = await bot.say(RIDER, "/help", "ChargeShare")
    async with database(database_url) as db:
        listing_id = (await db.get(Charger, charger_id)).listing_id  # type: ignore[union-attr]
    forged = ChargerSetCb(
        what=WalkupSetting.AUTO, listing_id=listing_id, charger_id=charger_id, value=0
    )
    answer = await api.wait_for_callback_answer(
        api.press(RIDER, RIDER, hello["message_id"], forged.pack())
    )
    assert answer["show_alert"] and "belongs to someone else" in answer["text"], answer
    assert (await charger_row(database_url, charger_id)).walkup_auto
    answer = await bot.press(MERCHANT, MERCHANT, panel, "accept walk-ups: off")
    assert answer["text"] == "Saved."
    await bot.expect(MERCHANT, "you are asked", after)
    assert not (await charger_row(database_url, charger_id)).walkup_auto

    card = await bot.say(RIDER, f"/start {token}", "Charge now?")
    assert "has 120 seconds to answer" in plain(card)
    merchant_after = api.last_message_id(MERCHANT)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, card, "30 min")
    waiting = await bot.expect(RIDER, "Asked the merchant", after)
    assert "(120 seconds)" in plain(waiting) or "seconds)" in plain(waiting)
    request = await bot.expect(MERCHANT, "New booking request", merchant_after)
    answer = await bot.press(MERCHANT, MERCHANT, request, "Accept")
    assert "Accepted" in answer["text"]
    accepted = await bot.expect(RIDER, "Booking accepted", after, timeout=10)
    # the walk-up is for now: Start comes with the answer
    await bot.press(RIDER, RIDER, accepted, "Start charging")
    started = await bot.expect(RIDER, "Charging started", after, timeout=10)
    [booking] = await walkup_bookings(database_url)
    end_before = booking.end_at

    after = api.last_message_id(RIDER)
    answer = await bot.press(RIDER, RIDER, started, "➕ 60 min")
    assert "Extended" in answer["text"]
    await bot.expect(RIDER, "Window ends at", after)
    [booking] = await walkup_bookings(database_url)
    assert (booking.end_at - end_before).total_seconds() == 3600

    # the plug's failsafe moved with it: PulseTime set again before a second ON
    # (the relay was on already, so "on" confirms at once: the plug may get it a moment
    # after the answer)
    def pulses() -> list[int]:
        return [int(p) for t, p, _ in plug.commands if t.endswith("/PulseTime")]

    await wait_until(lambda: len(pulses()) == 2, 10, what="PulseTime sent again")
    assert pulses()[1] > pulses()[0] + 3000  # about an hour more
    # a forged Extend from another person changes nothing
    hello = await bot.say(OTHER_RIDER, "/help", "ChargeShare")
    session = (await bot_sessions(database_url))[0]
    forged = ExtendCb(charge_id=session, minutes=30).pack()
    answer = await api.wait_for_callback_answer(
        api.press(OTHER_RIDER, OTHER_RIDER, hello["message_id"], forged)
    )
    assert answer["show_alert"], answer
    [again] = await walkup_bookings(database_url)
    assert again.end_at == booking.end_at


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_two_riders_scan_and_press_at_once(
    bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list
) -> None:
    api = bot.api
    charger_id, token = await label_token(bot, database_url)
    # a plug that reports no power reading (set before it first reports): no "until full"
    plug = SimShelly(broker.url, "shelly-no-meter")
    plug.meters_power = False
    await plug.start()
    plugs.append(plug)
    await set_charger(database_url, charger_id, plug_driver="shelly", plug_id=plug.device_id)
    cards = [await bot.say(user, f"/start {token}", "Charge now?") for user in (RIDER, OTHER_RIDER)]
    for card in cards:
        assert "does not measure power" in plain(card)
        labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
        assert not any("Until full" in label for label in labels), labels
    afters = [api.last_message_id(user) for user in (RIDER, OTHER_RIDER)]
    queries = [
        api.press_button(user, user, card["message_id"], "60 min")
        for user, card in zip((RIDER, OTHER_RIDER), cards, strict=True)
    ]
    answers = await asyncio.gather(*(api.wait_for_callback_answer(q) for q in queries))
    taken = [a for a in answers if "just taken" in (a.get("text") or "")]
    assert len(taken) == 1, answers
    winner = RIDER if taken[0] is answers[1] else OTHER_RIDER
    await bot.expect(winner, "Booked now", afters[(RIDER, OTHER_RIDER).index(winner)])
    [booking] = await walkup_bookings(database_url)
    assert booking.user_id == winner and booking.status == BookingStatus.ACCEPTED
    # the loser's scan now says the charger is not free
    loser = OTHER_RIDER if winner == RIDER else RIDER
    reply = await bot.say(loser, f"/start {token}", "not free")
    assert "no booking for this charger" in plain(reply)
