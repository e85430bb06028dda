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
    api.send_text(GROUP, RIDER, "/report")
    await api.wait_idle()
    assert not [
        m for m in api.bot_messages(GROUP) if m["message_id"] > after and "report" in plain(m)
    ]
