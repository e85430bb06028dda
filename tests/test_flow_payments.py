"""Paying for a booking in Telegram (issue #14), end to end through the real bot and
the local Bot API server over HTTP, on SQLite and PostgreSQL: Confirm → invoice (or a
wallet top-up under the currency's minimum) → pre-checkout → successful payment →
the merchant's request; a duplicate payment, a mismatch, a booking cancelled
meanwhile (refused at pre-checkout, or kept in the wallet when it slips through),
an unpaid booking expiring, and a rejected booking returned to the wallet."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from models import Booking, BookingStatus, Payment
from models.base import utcnow
from models.db import create_engine, create_session_factory
from services import bookings, ledger
from services.bookings import BookingRules
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import GROUP, BotHarness, start_api
from tests.plugs import SimPlug
from tests.support.services import MosquittoServer
from tests.support.waiting import wait_until
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER, book, seed_listing
from tests.test_flow_charging import database, label_token, plug_for, scan_and_start, stop

TOKEN = "284685063:TEST:sandbox-provider"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "en")
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(
        api, database_url, payment_provider_token=TOKEN, scheduler_interval_seconds=0.2
    )
    await harness.start()
    yield harness
    await harness.stop()


async def wallet_of(url: str, user: int) -> int:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as db:
            return await ledger.balance(db, ledger.wallet(user, "CNY"))
    finally:
        await engine.dispose()


async def booking_status(url: str, booking_id: int) -> BookingStatus:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as db:
            status = await db.scalar(select(Booking.status).where(Booking.id == booking_id))
            assert status is not None
            return status
    finally:
        await engine.dispose()


async def payments_recorded(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as db:
            return int(await db.scalar(select(func.count()).select_from(Payment)) or 0)
    finally:
        await engine.dispose()


async def invoice_after(bot: BotHarness, user: int, after: int) -> dict[str, Any]:
    return await bot.api.wait_for_message(user, lambda m: "invoice" in m, after=after)


async def confirm(bot: BotHarness, user: int, window: str) -> tuple[dict[str, Any], int]:
    """Book the seeded charger for ``window`` and press Confirm; returns the rider's
    answer and the message id before it (the invoice comes after)."""
    summary = await book(bot, user, window, "Confirm booking")
    after = bot.api.last_message_id(user)
    await bot.press(user, user, summary, "Confirm booking")
    answer = await bot.expect(user, "Booking #", after)
    return answer, after


async def test_pay_the_invoice_then_the_merchant_is_asked(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    await seed_listing(bot, database_url)  # 2.50 CNY/hour
    merchant_after = api.last_message_id(MERCHANT)
    # four hours: 10.00 CNY, an invoice of its own (the minimum is 10.00)
    answer, after = await confirm(bot, RIDER, "tomorrow 09:00-13:00")
    text = plain(answer)
    assert "waits for your payment" in text and "To pay: 10.00 CNY" in text
    assert "within 10 minutes" in text
    invoice = await invoice_after(bot, RIDER, after)
    assert invoice["invoice"]["total_amount"] == 1000
    assert invoice["invoice"]["currency"] == "CNY"
    assert invoice["invoice"]["title"] == "Booking #1"
    sent = api.invoice(RIDER, invoice["message_id"])
    assert sent is not None and sent["provider_token"] == TOKEN
    # the merchant is not asked before the booking is paid
    assert not [m for m in api.bot_messages(MERCHANT)[merchant_after:] if "request" in plain(m)]
    assert await booking_status(database_url, 1) == BookingStatus.UNPAID

    after = api.last_message_id(RIDER)
    payment = await api.pay_invoice(RIDER, RIDER, invoice["message_id"])
    assert payment.status == "paid", payment
    received = await bot.expect(RIDER, "Payment of 10.00 CNY received", after)
    assert "booking #1 is paid" in plain(received)
    await bot.expect(MERCHANT, "New booking request from Ravi", merchant_after)
    assert await booking_status(database_url, 1) == BookingStatus.REQUESTED
    assert await wallet_of(database_url, RIDER) == 0  # all of it held for the booking

    # Telegram delivers the same payment again: nothing more is credited or said
    after = api.last_message_id(RIDER)
    api.deliver_payment_again(payment)
    await api.wait_idle()
    await bot.say(RIDER, "/bookings", "Your bookings")  # the bot has handled it by now
    assert await payments_recorded(database_url) == 1
    assert not [
        m for m in api.bot_messages(RIDER) if m["message_id"] > after and "Payment" in plain(m)
    ]

    # the merchant rejects: the whole prepayment goes back to the wallet at once
    request = await bot.expect(MERCHANT, "New booking request", merchant_after)
    await bot.press(MERCHANT, MERCHANT, request, "Reject")
    request = await bot.expect(MERCHANT, "No free charging spot", merchant_after)
    rider_after = api.last_message_id(RIDER)
    await bot.press(MERCHANT, MERCHANT, request, "No free charging spot")
    await bot.expect(RIDER, "Booking not accepted", rider_after)
    assert await wallet_of(database_url, RIDER) == 1000

    # the next booking is paid from the wallet at once: no invoice, the merchant asked
    merchant_after = api.last_message_id(MERCHANT)
    answer, after = await confirm(bot, RIDER, "tomorrow 14:00-16:00")
    assert "paid from your wallet (5.00 CNY; left in your wallet: 5.00 CNY)" in plain(answer)
    await bot.expect(MERCHANT, "Booking #2", merchant_after)
    assert not [m for m in api.bot_messages(RIDER) if m["message_id"] > after and "invoice" in m]


async def test_small_amount_is_a_wallet_top_up_with_choices(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    await seed_listing(bot, database_url)
    # two hours: 5.00 CNY, under Telegram's minimum: a top-up of at least 10.00
    answer, after = await confirm(bot, RIDER, "tomorrow 09:00-11:00")
    assert "less than the smallest payment" in plain(answer)
    assert "at least 10.00 CNY" in plain(answer)
    first = await invoice_after(bot, RIDER, after)
    assert first["invoice"]["total_amount"] == 1000 and first["invoice"]["title"] == "Wallet top-up"
    choices = await bot.expect(RIDER, "Or top up more", after)
    assert buttons(choices) == [["20.00 CNY", "50.00 CNY", "100.00 CNY"]]

    # the rider picks 50: a new invoice replaces the first, which can no longer be paid
    after = api.last_message_id(RIDER)
    pressed = await bot.press(RIDER, RIDER, choices, "50.00 CNY")
    assert "50.00 CNY follows" in pressed["text"]
    fifty = await invoice_after(bot, RIDER, after)
    assert fifty["invoice"]["total_amount"] == 5000
    stale = await api.pay_invoice(RIDER, RIDER, first["message_id"])
    assert stale.status == "rejected" and "can no longer be paid" in (stale.error_message or "")

    after = api.last_message_id(RIDER)
    merchant_after = api.last_message_id(MERCHANT)
    assert (await api.pay_invoice(RIDER, RIDER, fifty["message_id"])).status == "paid"
    await bot.expect(RIDER, "Payment of 50.00 CNY received: booking #1 is paid", after)
    await bot.expect(MERCHANT, "New booking request", merchant_after)
    assert await wallet_of(database_url, RIDER) == 4500  # 50.00 - 5.00 held


async def test_refusals_at_pre_checkout_and_a_payment_that_slips_through(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    await seed_listing(bot, database_url)
    _answer, after = await confirm(bot, RIDER, "tomorrow 09:00-13:00")
    invoice = await invoice_after(bot, RIDER, after)
    message_id = invoice["message_id"]

    # a tampered amount or currency is refused with a reason; nothing is charged
    forged = await api.pay_invoice(RIDER, RIDER, message_id, total_amount=1)
    assert forged.status == "rejected" and "does not match" in (forged.error_message or "")
    forged = await api.pay_invoice(RIDER, RIDER, message_id, currency="USD")
    assert forged.status == "rejected" and "10.00 CNY" in (forged.error_message or "")
    # an invoice payload no invoice has
    forged = await api.pay_invoice(RIDER, RIDER, message_id, invoice_payload="made-up")
    assert forged.status == "rejected" and "does not belong" in (forged.error_message or "")

    # approved at pre-checkout, but the provider takes its time; meanwhile the rider
    # cancels the booking; the money arrives after all and stays in the wallet
    held = await api.pay_invoice(RIDER, RIDER, message_id, decline_after_checkout=True)
    assert held.status == "declined" and held.pre_checkout_query_id
    listed = await bot.say(RIDER, "/bookings", "Your bookings")
    opened_after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, listed, "#1")
    mine = await bot.expect(RIDER, "Cancel this booking", opened_after)
    await bot.press(RIDER, RIDER, mine, "Cancel this booking")
    await wait_until(
        lambda: _is(database_url, 1, BookingStatus.CANCELLED), timeout=10, what="cancelled"
    )
    # paying the invoice of the cancelled booking now is refused at pre-checkout
    refused = await api.pay_invoice(RIDER, RIDER, message_id)
    assert refused.status == "rejected"
    assert "can no longer be paid" in (refused.error_message or "")

    after = api.last_message_id(RIDER)
    api.charge_later(held)
    gone = await bot.expect(RIDER, "Payment of 10.00 CNY received", after)
    assert "cancelled or had expired meanwhile" in plain(gone) and "/wallet" in plain(gone)
    assert await wallet_of(database_url, RIDER) == 1000


async def _is(url: str, booking_id: int, status: BookingStatus) -> bool:
    return await booking_status(url, booking_id) == status


async def test_an_unpaid_booking_expires_and_says_so(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    await seed_listing(bot, database_url)
    _answer, after = await confirm(bot, RIDER, "tomorrow 09:00-13:00")
    invoice = await invoice_after(bot, RIDER, after)
    # its time to pay runs out (moved back rather than waited for)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db, db.begin():
        await db.execute(update(Booking).where(Booking.id == 1).values(pay_by=utcnow()))
    await engine.dispose()
    expired = await bot.expect(RIDER, "not paid in time", after, timeout=15)
    assert "Booking #1" in plain(expired) and buttons(expired) == [["🔎 Find another charger"]]
    assert await booking_status(database_url, 1) == BookingStatus.EXPIRED
    late = await api.pay_invoice(RIDER, RIDER, invoice["message_id"])
    assert late.status == "rejected" and "can no longer be paid" in (late.error_message or "")
    assert await wallet_of(database_url, RIDER) == 0


# -- charging on a prepaid booking (a real mosquitto and a simulated plug) ----------------


@pytest.fixture
async def charging_bot(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(
        api,
        database_url,
        payment_provider_token=TOKEN,
        mqtt_url=broker.url,
        scheduler_interval_seconds=0.3,
        device_confirm_seconds=2,
    )
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
async def plugs() -> AsyncIterator[list[SimPlug]]:
    started: list[SimPlug] = []
    yield started
    for plug in started:
        await plug.stop()


async def paid_booking(bot: BotHarness, url: str, charger_id: int, hours: int = 1) -> int:
    """The rider's booking of the coming ``hours``, paid through the invoice the bot
    sent (one hour at 2.50 CNY: a top-up of 10.00 CNY), and accepted."""
    after = bot.api.last_message_id(RIDER)
    now = utcnow()
    rules = BookingRules(zone=bot.settings.zone, money=bot.settings.money_rules)
    async with database(url) as db:
        booking = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=now,
            end=now + timedelta(hours=hours),
            rules=rules,
            now=now,
        )
    invoice = await invoice_after(bot, RIDER, after)
    paid = await bot.api.pay_invoice(RIDER, RIDER, invoice["message_id"])
    assert paid.status == "paid"
    await wait_until(lambda: _is(url, booking.id, BookingStatus.REQUESTED), timeout=10)
    async with database(url) as db:
        await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT)
    return booking.id


@pytest.mark.parametrize("family", ["tasmota"])
async def test_pay_start_stop_settle_and_the_wallets_rest(
    charging_bot: BotHarness,
    database_url: str,
    broker: MosquittoServer,
    plugs: list[SimPlug],
    family: str,
) -> None:
    bot = charging_bot
    charger_id, token = await label_token(bot, database_url)
    plug = await plug_for(family, database_url, broker, charger_id, plugs)
    await paid_booking(bot, database_url, charger_id)
    assert await wallet_of(database_url, RIDER) == 750  # 10.00 paid, 2.50 held

    started = await scan_and_start(bot, RIDER, token)
    assert plug.on
    after = bot.api.last_message_id(RIDER)
    await stop(bot, RIDER, started)
    order = await bot.expect(RIDER, "Order #", after, timeout=10)
    text = plain(order)
    assert "Cost: 0.04 CNY" in text  # one started minute at 2.50/h
    # the receipt: dates, the billing rule, the prepayment and what went back
    assert "each started minute at the hourly price" in text
    assert "Prepaid: 2.50 CNY · back to your wallet: 2.46 CNY" in text
    assert "Paid and settled (prepaid in Telegram)" in text
    day = f"{utcnow().astimezone(bot.settings.zone):%Y-%m-%d}"
    assert f"Start: {day}" in text
    merchant = await bot.expect(MERCHANT, "Order #", 0, timeout=10)
    assert "platform fee: 0.00 CNY · your share: 0.04 CNY" in plain(merchant)
    assert not buttons(merchant)  # prepaid: nothing to mark
    platform = await bot.expect(GROUP, "Order #", 0, timeout=10)
    assert "prepaid in Telegram · prepaid: 2.50 CNY" in plain(platform)
    # the rest of the prepayment is back in the wallet: 7.50 + 2.50 - 0.04
    await wait_until(lambda: _wallet_is(database_url, RIDER, 996), timeout=10, what="settled")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_failed_start_and_an_unanswered_request_return_the_prepayment(
    charging_bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list[SimPlug]
) -> None:
    bot = charging_bot
    charger_id, token = await label_token(bot, database_url)
    plug = await plug_for("tasmota", database_url, broker, charger_id, plugs)
    await paid_booking(bot, database_url, charger_id)
    plug.never_confirm = True
    card = await bot.say(RIDER, f"/start {token}", "press Start")
    after = bot.api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, card, "Start charging")
    await bot.expect(RIDER, "did not confirm", after, timeout=10)
    assert await wallet_of(database_url, RIDER) == 1000  # the whole 2.50 back

    # a second booking, paid from the wallet; the merchant never answers: it expires
    # and its prepayment goes back
    now = utcnow()
    rules = BookingRules(zone=bot.settings.zone, money=bot.settings.money_rules)
    async with database(database_url) as db:
        second = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=now + timedelta(hours=2),
            end=now + timedelta(hours=3),
            rules=rules,
            now=now,
        )
    assert await wallet_of(database_url, RIDER) == 750
    after = bot.api.last_message_id(RIDER)
    async with database(database_url) as db:
        await db.execute(update(Booking).where(Booking.id == second.id).values(respond_by=utcnow()))
        await db.commit()
    await bot.expect(RIDER, "did not answer in time", after, timeout=15)
    assert await wallet_of(database_url, RIDER) == 1000


async def _wallet_is(url: str, user: int, amount: int) -> bool:
    return await wallet_of(url, user) == amount


@pytest.fixture
async def shop_bot(
    api: FakeBotAPI, database_url: str, broker: MosquittoServer
) -> AsyncIterator[BotHarness]:
    """No provider token: pay at the shop."""
    harness = BotHarness(
        api,
        database_url,
        mqtt_url=broker.url,
        scheduler_interval_seconds=0.3,
        device_confirm_seconds=2,
    )
    await harness.start()
    yield harness
    await harness.stop()


async def test_pay_at_the_shop_and_the_merchant_marks_it_paid(
    shop_bot: BotHarness, database_url: str, broker: MosquittoServer, plugs: list[SimPlug]
) -> None:
    bot, api = shop_bot, shop_bot.api
    charger_id, token = await label_token(bot, database_url)
    await plug_for("tasmota", database_url, broker, charger_id, plugs)
    now = utcnow()
    async with database(database_url) as db:
        booking = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=now,
            end=now + timedelta(hours=1),
            rules=BookingRules(zone=bot.settings.zone),
            now=now,
        )
        await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT, now=now)
    merchant_after = api.last_message_id(MERCHANT)
    started = await scan_and_start(bot, RIDER, token)
    after = api.last_message_id(RIDER)
    await stop(bot, RIDER, started)
    order = await bot.expect(RIDER, "Order #", after, timeout=10)
    assert "Pay at the shop: please pay 0.04 CNY to the merchant" in plain(order)
    receipt = await bot.expect(MERCHANT, "Order #", merchant_after, timeout=10)
    assert "the rider pays you 0.04 CNY" in plain(receipt)
    assert buttons(receipt) == [["✅ Mark paid"]]

    # someone else's press changes nothing; the merchant's marks it paid, once
    forged = await api.wait_for_callback_answer(
        api.press(RIDER, RIDER, order["message_id"], "ps:1")
    )
    assert forged["show_alert"]
    after = api.last_message_id(RIDER)
    answer = await bot.press(MERCHANT, MERCHANT, receipt, "Mark paid")
    assert "Marked paid" in answer["text"]
    await bot.expect(RIDER, "marked order #1 (0.04 CNY) as paid at the shop", after)
    again = await api.wait_for_callback_answer(
        api.press(MERCHANT, MERCHANT, receipt["message_id"], "ps:1")
    )
    assert "already settled" in again["text"]
