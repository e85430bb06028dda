"""QR labels (first part of issue #4): after approval the merchant gets a
printable PNG per charger whose code, decoded as a phone camera would, is the
bot's start link with the charger's token; renewing voids the old code."""

import io
from collections.abc import AsyncIterator

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from models import Charger
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, plain
from tests.harness import BotHarness, start_api
from tests.test_flow_booking import MERCHANT, seed_listing


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((MERCHANT, "Mia", "en"), (2001, "Ravi", "en"), (2002, "Olga", "en"))
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, sqlite_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, sqlite_url)
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chargeshare.db'}"


def decode(api: FakeBotAPI, message: dict) -> str:
    png = api.file_bytes(message["photo"][-1]["file_id"])
    (code,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return code.text


def confirm_data(message: dict) -> str:
    """The callback data of the "Yes, renew it" button (kept after the bot removed it)."""
    return message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]


async def token(url: str) -> str:
    engine = create_engine(url)
    async with create_session_factory(engine)() as db:
        value = (await db.scalars(select(Charger.qr_token))).one()
    await engine.dispose()
    return value


async def test_label_on_approval_and_renewal(bot: BotHarness, sqlite_url: str) -> None:
    api = bot.api
    after = api.last_message_id(MERCHANT)
    await seed_listing(bot, sqlite_url)
    label = await bot.expect(MERCHANT, "Print this label", after, timeout=10)
    first = await token(sqlite_url)
    assert len(first) >= 22  # at least 128 random bits, URL-safe
    assert decode(api, label) == f"https://t.me/chargeshare_test_bot?start={first}"
    assert "Volt Café" in plain(label)

    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, label, "Renew this QR code")
    confirm = await bot.expect(MERCHANT, "stops working at once", after)
    answer = await bot.press(MERCHANT, MERCHANT, confirm, "Yes, renew it")
    assert "old one no longer works" in answer["text"]
    new_label = await bot.expect(MERCHANT, "Print this label", after)
    second = await token(sqlite_url)
    assert second != first
    assert decode(api, new_label).endswith(f"?start={second}")
    # the same confirmation pressed again (a double tap, an old prompt): no second renewal
    again = await api.wait_for_callback_answer(
        api.press(MERCHANT, MERCHANT, confirm["message_id"], confirm_data(confirm))
    )
    assert again["show_alert"] and "already renewed" in again["text"]
    assert await token(sqlite_url) == second

    # someone else forging the renew button changes nothing
    hello = await bot.say(2001, "/start", "ChargeShare")
    answer = await api.wait_for_callback_answer(
        api.press(2001, 2001, hello["message_id"], "qr:renew_yes:1:0123456789")
    )
    assert answer["show_alert"] and "belongs to someone else" in answer["text"]
    assert await token(sqlite_url) == second

    # /listings offers the labels again
    overview = await bot.say(MERCHANT, "/listings", "Your listings")
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, overview, "#1 Volt Café")
    detail = await bot.expect(MERCHANT, "QR labels", after)
    after = api.last_message_id(MERCHANT)
    answer = await bot.press(MERCHANT, MERCHANT, detail, "QR labels")
    assert "1 label sent" in answer["text"]
    again = await bot.expect(MERCHANT, "Print this label", after)
    assert decode(api, again).endswith(f"?start={second}")
