"""Money for merchants and admins, end to end through the real bot and the local Bot
API server (SQLite and PostgreSQL): /earnings with its chart (a PNG) and CSV export
(parsed), /report in the moderation group."""

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.base import utcnow
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api
from tests.support.money import MERCHANT, make_world, paid_booking, run_session

RIDER, OTHER = 2001, 2002
TOKEN = "284685063:TEST:sandbox-provider"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER, "Olga", "zh"))
    yield server
    await server.stop()


@pytest.fixture
async def open_db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url, payment_provider_token=TOKEN)
    await harness.start()
    yield harness
    await harness.stop()


async def two_orders(open_db: async_sessionmaker[AsyncSession]) -> None:
    """Two settled orders of the merchant's per-hour charger (6.00 CNY/h), ended
    within the last hours: one of 60 minutes (6.00), one of 30 (3.00)."""
    world = await make_world(open_db, [RIDER, OTHER])
    start = (utcnow() - timedelta(hours=5)).replace(second=0, microsecond=0)
    first = await paid_booking(open_db, world.per_hour, RIDER, start)
    await run_session(open_db, first, minutes=60, kwh=1.5)
    second = await paid_booking(open_db, world.per_hour, RIDER, start + timedelta(hours=2))
    await run_session(open_db, second, minutes=30, kwh=0.5)


async def test_earnings_chart_and_csv(
    bot: BotHarness, database_url: str, open_db: async_sessionmaker[AsyncSession]
) -> None:
    api = bot.api
    await two_orders(open_db)
    after = api.last_message_id(MERCHANT)
    shown = await bot.say(MERCHANT, "/earnings", "Your earnings")
    text = plain(shown)
    assert "Riders prepay in Telegram" in text
    # 9.00 CNY of revenue, 10% of it the platform's: 0.90 fees, 8.10 payable
    assert "2 orders · 2.000 kWh · revenue 9.00 CNY · fees 0.90 CNY · payable 8.10 CNY" in text
    assert "Owed to you now: 8.10 CNY" in text and "No payouts yet" in text
    assert buttons(shown) == [["📄 Export CSV"]]
    chart = await api.wait_for_message(MERCHANT, lambda m: "photo" in m, after=after)
    assert "Daily revenue and energy" in chart.get("caption", "")
    png = api.file_bytes(chart["photo"][-1]["file_id"])
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1000, 600)

    after = api.last_message_id(MERCHANT)
    answer = await bot.press(MERCHANT, MERCHANT, shown, "Export CSV")
    assert "CSV sent" in answer["text"]
    document = await api.wait_for_message(MERCHANT, lambda m: "document" in m, after=after)
    assert document["document"]["file_name"] == "chargeshare-orders.csv"
    rows = list(
        csv.DictReader(
            io.StringIO(api.file_bytes(document["document"]["file_id"]).decode("utf-8-sig"))
        )
    )
    assert [(r["cost"], r["fee"], r["payable"], r["payment"]) for r in rows] == [
        ("6.00", "0.60", "5.40", "prepaid"),
        ("3.00", "0.30", "2.70", "prepaid"),
    ]

    # someone with no orders: zeros, no chart
    after = api.last_message_id(RIDER)
    await bot.say(RIDER, "/earnings", "no orders")
    await api.wait_idle()
    assert not [m for m in api.bot_messages(RIDER) if m["message_id"] > after and "photo" in m]


async def test_report_in_the_group_for_admins_only(
    bot: BotHarness, database_url: str, open_db: async_sessionmaker[AsyncSession]
) -> None:
    api = bot.api
    await two_orders(open_db)
    after = api.last_message_id(GROUP)
    shown = await bot.say_in_group(ADMINS[0], "/report", "Platform report")
    text = plain(shown)
    assert "revenue 9.00 CNY · fees 0.90 CNY" in text
    assert "Fees booked: 0.90 CNY" in text and "Owed to merchants: 8.10 CNY" in text
    assert "Top chargers" in text and "revenue 9.00 CNY · 2 orders · 2.000 kWh" in text
    chart = await api.wait_for_message(GROUP, lambda m: "photo" in m, after=after)
    image = Image.open(io.BytesIO(api.file_bytes(chart["photo"][-1]["file_id"])))
    assert image.size == (1000, 600)
    # not an admin: no report
    after = api.last_message_id(GROUP)
    await bot.say_in_group(RIDER, "/report", "Only the platform's admins can do this")
    assert not [
        m for m in api.bot_messages(GROUP) if m["message_id"] > after and "report" in plain(m)
    ]


async def test_wallet_top_up_and_a_refund_marked_done_by_an_admin(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    shown = await bot.say(RIDER, "/wallet", "Your wallet")
    assert "0.00 CNY" in plain(shown) and "No movements yet" in plain(shown)
    assert buttons(shown) == [["➕ Top up"]]
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, shown, "Top up")
    choices = await bot.expect(RIDER, "How much", after)
    assert buttons(choices) == [["10.00 CNY", "20.00 CNY", "50.00 CNY", "100.00 CNY"]]
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, choices, "20.00 CNY")
    invoice = await api.wait_for_message(RIDER, lambda m: "invoice" in m, after=after)
    assert invoice["invoice"]["title"] == "Wallet top-up"
    paid = await api.pay_invoice(RIDER, RIDER, invoice["message_id"])
    assert paid.status == "paid" and paid.successful_payment is not None
    await bot.expect(RIDER, "Top-up of 20.00 CNY received. Your wallet: 20.00 CNY", after)

    shown = await bot.say(RIDER, "/wallet", "Your wallet")
    assert "+20.00 CNY · payment received" in plain(shown)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, shown, "Ask for a refund")
    confirm = await bot.expect(RIDER, "whole balance, 20.00 CNY, back?", after)
    group_after = api.last_message_id(GROUP)
    await bot.press(RIDER, RIDER, confirm, "Yes, ask for it back")
    await bot.expect(RIDER, "Refund #1 of 20.00 CNY asked", after)
    # a second press asks nothing more: the wallet is empty now
    again = await api.wait_for_callback_answer(
        api.press(RIDER, RIDER, confirm["message_id"], "wl:refund_yes:0")
    )
    assert "no balance to refund" in again["text"]

    card = await bot.expect(GROUP, "Refund request #1", group_after)
    provider_id = paid.successful_payment["provider_payment_charge_id"]
    assert provider_id in plain(card) and "20.00 CNY" in plain(card)
    assert buttons(card) == [["✅ Mark refunded", "❌ Decline"]]
    # not an admin: an alert, nothing changes
    refused = await bot.press(GROUP, RIDER, card, "Mark refunded")
    assert refused["show_alert"]

    prompt_after = api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[0], card, "Mark refunded")
    prompt = await bot.expect(GROUP, "refund reference for request #1", prompt_after)
    after = api.last_message_id(RIDER)
    api.send_text(GROUP, ADMINS[0], "re_3PqTEST", reply_to_message_id=prompt["message_id"])
    await bot.expect(GROUP, "Refund #1 marked refunded", prompt_after)
    told = await bot.expect(RIDER, "refund #1 of 20.00 CNY was sent back", after)
    assert "re_3PqTEST" in plain(told)
    card = await bot.expect(GROUP, "Refunded by", group_after)
    assert not buttons(card)
    # the old button, pressed again: already decided
    stale = await api.wait_for_callback_answer(
        api.press(GROUP, ADMINS[1], card["message_id"], "rf:decline:1")
    )
    assert "already been decided" in stale["text"]
    shown = await bot.say(RIDER, "/wallet", "Your wallet")
    assert "0.00 CNY" in plain(shown) and "refund asked" in plain(shown)


async def test_payout_confirmed_by_an_admin_and_seen_in_earnings(
    bot: BotHarness, database_url: str, open_db: async_sessionmaker[AsyncSession]
) -> None:
    api = bot.api
    await two_orders(open_db)  # 8.10 CNY owed to the merchant
    await bot.say_in_group(ADMINS[0], "/payout", "Usage: /payout")
    await bot.say_in_group(ADMINS[0], "/payout 1001 lots REF", "Please type an amount")
    await bot.say_in_group(ADMINS[0], "/payout @nobody 5 REF", "I do not know the user @nobody")
    await bot.say_in_group(ADMINS[0], "/payout 1001 9 REF-1", "Owed to them now: 8.10 CNY")
    # too much: refused at the confirmation, nothing recorded
    confirm = await bot.expect(GROUP, "Record a payout", 0)
    answer = await bot.press(GROUP, ADMINS[0], confirm, "Record payout")
    assert "8.10" in answer["text"]

    confirm = await bot.say_in_group(ADMINS[0], "/payout 1001 5.00 BANK-42", "Record a payout")
    assert "Reference: BANK-42" in plain(confirm)
    refused = await bot.press(GROUP, RIDER, confirm, "Record payout")  # not an admin
    assert refused["show_alert"]
    after = api.last_message_id(MERCHANT)
    await bot.press(GROUP, ADMINS[0], confirm, "Record payout")
    await bot.expect(GROUP, "Payout #1 of 5.00 CNY", 0)
    told = await bot.expect(MERCHANT, "payout of 5.00 CNY was recorded", after)
    assert "Still owed to you: 3.10 CNY" in plain(told)
    shown = await bot.say(MERCHANT, "/earnings", "Your earnings")
    assert "Owed to you now: 3.10 CNY" in plain(shown) and "5.00 CNY (ref. BANK-42)" in plain(shown)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_menus_and_help_name_the_money_commands(bot: BotHarness) -> None:
    calls = bot.api.calls("setMyCommands")
    private = [c for c in calls if (c.get("scope") or {}).get("type") == "all_private_chats"]
    group = [c for c in calls if (c.get("scope") or {}).get("type") == "chat"]
    for call in private:  # English and Chinese
        names = [c["command"] for c in call["commands"]]
        assert "wallet" in names and "earnings" in names
    assert {c.get("language_code") for c in private} == {None, "zh"}
    assert {"report", "payout"} <= {c["command"] for c in group[0]["commands"]}
    shown = await bot.say(RIDER, "/help", "ChargeShare")
    assert "within 10 minutes" in plain(shown) and "/wallet" in plain(shown)
    shown = await bot.say(OTHER, "/help", "钱包")
    assert "/earnings" in plain(shown)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_declined_refund_goes_back_to_the_wallet(bot: BotHarness) -> None:
    api = bot.api
    shown = await bot.say(OTHER, "/wallet", "钱包")  # a Chinese-speaking rider
    after = api.last_message_id(OTHER)
    await bot.press(OTHER, OTHER, shown, "充值")
    choices = await bot.expect(OTHER, "充值多少", after)
    await bot.press(OTHER, OTHER, choices, "10.00 元")
    invoice = await api.wait_for_message(OTHER, lambda m: "invoice" in m, after=after)
    assert invoice["invoice"]["title"] == "钱包充值"
    assert (await api.pay_invoice(OTHER, OTHER, invoice["message_id"])).status == "paid"
    await bot.expect(OTHER, "已收到充值 10.00 元", after)
    shown = await bot.say(OTHER, "/wallet", "钱包")
    after = api.last_message_id(OTHER)
    await bot.press(OTHER, OTHER, shown, "申请退款")
    confirm = await bot.expect(OTHER, "要申请退还全部余额 10.00 元 吗", after)
    group_after = api.last_message_id(GROUP)
    await bot.press(OTHER, OTHER, confirm, "是，申请退款")
    card = await bot.expect(GROUP, "Refund request #1", group_after)  # the group's language
    await bot.press(GROUP, ADMINS[1], card, "Decline")
    prompt = await bot.expect(GROUP, "reason for declining refund request #1", group_after)
    after = api.last_message_id(OTHER)
    # a message that is not a reply to the prompt is not taken as the reason
    api.send_text(GROUP, ADMINS[1], "just chatting")
    api.send_text(
        GROUP,
        ADMINS[1],
        "Paid with a card we cannot refund",
        reply_to_message_id=prompt["message_id"],
    )
    await bot.expect(GROUP, "Refund #1 declined", group_after)
    told = await bot.expect(OTHER, "退款申请 #1（10.00 元）被拒绝", after)
    assert "Paid with a card we cannot refund" in plain(told)
    shown = await bot.say(OTHER, "/wallet", "钱包")
    assert "10.00 元" in plain(shown) and "退款被拒绝" in plain(shown)
    card = await bot.expect(GROUP, "Declined by", group_after)
    assert not buttons(card)
