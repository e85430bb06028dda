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


def label_png(api: FakeBotAPI, message: dict) -> bytes:
    """A label is a PNG document (a photo would be recompressed and blurred for print)."""
    assert message["document"]["mime_type"] == "image/png", message
    return api.file_bytes(message["document"]["file_id"])


def decode(api: FakeBotAPI, message: dict) -> str:
    (code,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(label_png(api, message))))
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


# -- issue #15: the short code and a label's photo, as a phone would send them ----------


async def short_code(url: str) -> str:
    engine = create_engine(url)
    async with create_session_factory(engine)() as db:
        value = (await db.scalars(select(Charger.short_code))).one()
    await engine.dispose()
    return value


def as_phone_photo(png: bytes) -> bytes:
    """The label as a phone's camera and Telegram deliver it: smaller, grey paper, a
    slight tilt, JPEG-compressed."""
    label = Image.open(io.BytesIO(png)).convert("RGB")
    label = label.resize((label.width * 2 // 3, label.height * 2 // 3))
    paper = Image.new("RGB", (label.width + 200, label.height + 200), (200, 196, 188))
    paper.paste(label, (100, 100))
    photo = paper.rotate(4, expand=True, fillcolor=(90, 90, 90))
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=70)
    return out.getvalue()


async def test_the_label_carries_a_short_code_that_acts_like_a_scan(
    bot: BotHarness, sqlite_url: str
) -> None:
    api = bot.api
    after = api.last_message_id(MERCHANT)
    await seed_listing(bot, sqlite_url)
    label = await bot.expect(MERCHANT, "Print this label", after, timeout=10)
    code = await short_code(sqlite_url)
    assert len(code) == 6 and not set(code) & set("0O1I")
    assert f"/code {code}" in plain(label)
    png = label_png(api, label)
    assert Image.open(io.BytesIO(png)).format == "PNG"

    # a scan of a free charger without a booking offers Charge now; the typed code
    # (any case, spaced) says the same
    scanned = await bot.say(2001, f"/start {await token(sqlite_url)}", "Charge now?")
    typed = await bot.say(2001, f"/code {code[:3].lower()} {code[3:]}", "Charge now?")
    assert plain(typed) == plain(scanned)
    # a code that cannot be one, and one that is nobody's
    await bot.say(2001, "/code K0O1I2", "never 0, O, 1 or I")
    free = next(c for c in ("ABCDEF", "GHJKLM") if c != code)
    await bot.say(2001, f"/code {free}", "No charger has this code")
    await bot.say(2001, "/code", "Type the 6-character code")

    # a photo of the label, as a phone sends it, acts like the scan too
    after = api.last_message_id(2001)
    api.send_photo(2001, 2001, data=as_phone_photo(png))
    photo = await bot.expect(2001, "Charge now?", after, timeout=10)
    assert plain(photo) == plain(scanned)
    # a photo with no label in it
    after = api.last_message_id(2001)
    api.send_photo(2001, 2001)
    await bot.expect(2001, "found no ChargeShare QR code", after, timeout=10)

    # renewing the label voids the old short code and the old photo
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, label, "Renew this QR code")
    confirm = await bot.expect(MERCHANT, "stops working at once", after)
    await bot.press(MERCHANT, MERCHANT, confirm, "Yes, renew it")
    await bot.expect(MERCHANT, "Print this label", after)
    renewed = await short_code(sqlite_url)
    assert renewed != code
    await bot.say(2001, f"/code {code}", "No charger has this code")
    after = api.last_message_id(2001)
    api.send_photo(2001, 2001, data=as_phone_photo(png))
    await bot.expect(2001, "replaced by a new one", after, timeout=10)
    await bot.say(2001, f"/code {renewed}", "Charge now?")
