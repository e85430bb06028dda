"""Printable QR labels for chargers: the code large, the shop and charger under it.

The code encodes ``https://t.me/<bot username>?start=<charger token>``, which
opens the bot with the token when a phone's camera scans it. Rendering is CPU
work, so it runs in a thread.
"""

import asyncio
import io
from functools import cache, partial
from pathlib import Path

import qrcode
from aiogram import Bot
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from services import listings
from services.dto import ChargerInfo, ListingInfo
from services.tx import Db
from ui.callbacks import QrAction, QrRenewCb
from ui.i18n import Translator
from ui.parts import Part, send_now
from ui.views.booking import tariff_text

# Fonts with Chinese glyphs first (Debian: fonts-wqy-microhei, fonts-noto-cjk);
# a label without one still has a valid code, only CJK names show as boxes.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
WIDTH = 900


def start_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


# fixed on every label, whatever the merchant's language: riders read either
CALL_TO_ACTION = "Scan to charge / 扫码充电"


def _line(draw: ImageDraw.ImageDraw, text: str, size: int, y: int) -> None:
    font = _font(size)
    while draw.textlength(text, font=font) > WIDTH - 60 and len(text) > 4:
        text = text[:-2] + "…"
    width = draw.textlength(text, font=font)
    draw.text(((WIDTH - width) / 2, y), text, fill="black", font=font)


def render_label(link: str, title: str, subtitle: str, price: str = "", code: str = "") -> bytes:
    """A PNG for print: the call to action, the QR code (error correction M, 4-module
    quiet zone), the shop, the charger and its price, and the short code to type
    (``/code K7P2QX``) when a camera cannot scan."""
    qr_code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    qr_code.add_data(link)
    qr_code.make(fit=True)
    qr = qr_code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    side = WIDTH - 100
    qr = qr.resize((side, side), Image.Resampling.NEAREST)
    top = 110
    label = Image.new("RGB", (WIDTH, top + side + 330), "white")
    draw = ImageDraw.Draw(label)
    _line(draw, CALL_TO_ACTION, 60, 30)
    label.paste(qr, (50, top))
    y = top + side
    _line(draw, title, 48, y)
    _line(draw, subtitle, 36, y + 66)
    if price:
        _line(draw, price, 36, y + 116)
    if code:
        _line(draw, f"/code {code}", 64, y + 186)
    out = io.BytesIO()
    label.save(out, format="PNG", optimize=True)
    return out.getvalue()


async def render_label_async(
    link: str, title: str, subtitle: str, price: str = "", code: str = ""
) -> bytes:
    return await asyncio.to_thread(render_label, link, title, subtitle, price, code)


def renew_button(t: Translator, charger_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("btn.renew_qr"),
        callback_data=QrRenewCb(action=QrAction.RENEW, charger_id=charger_id),
    )
    return builder.as_markup()


def renew_confirm_button(t: Translator, charger: ChargerInfo) -> InlineKeyboardMarkup:
    """Renew, for the token the charger has now: a second press (or an old prompt)
    does not void the label printed after the first."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("btn.renew_qr_yes"),
        callback_data=QrRenewCb(
            action=QrAction.RENEW_YES,
            charger_id=charger.id,
            fp=listings.token_fingerprint(charger.qr_token),
        ),
    )
    return builder.as_markup()


async def send_label(
    bot: Bot, chat_id: int, t: Translator, listing: ListingInfo, charger: ChargerInfo
) -> None:
    me = await bot.me()
    title = t("qr.charger", n=charger.position + 1, method=t(f"method.{charger.method}"))
    # the price in both languages, as the call to action (the label is printed once)
    price = " · ".join(
        dict.fromkeys(
            tariff_text(lang, charger.price_minor, charger.price_unit, charger.currency)
            for lang in (Translator("en"), Translator("zh"))
        )
    )
    png = await render_label_async(
        start_link(me.username or "", charger.qr_token),
        listing.shop_name,
        title,
        price,
        charger.short_code,
    )
    # a document, not a photo: Telegram recompresses photos to JPEG, blurring the print
    await bot.send_document(
        chat_id,
        BufferedInputFile(png, filename=f"chargeshare-charger-{charger.id}.png"),
        caption=t("qr.caption", shop=listing.shop_name, charger=title)
        + "\n"
        + t("label.code_line", code=charger.short_code),
        reply_markup=renew_button(t, charger.id),
    )


async def send_charger_label(
    bot: Bot, db: Db, chat_id: int, t: Translator, charger_id: int, merchant_id: int
) -> None:
    """One charger's label, to its merchant (after its code was renewed)."""
    listing, charger = await listings.label_of(db, charger_id=charger_id, merchant_id=merchant_id)
    await send_label(bot, chat_id, t, listing, charger)


async def send_labels(
    bot: Bot,
    db: Db,
    chat_id: int,
    t: Translator,
    listing_id: int,
    merchant_id: int,
    part: Part = send_now,
) -> int:
    """One label per public charger, each a part of its own (keyed by the charger,
    which keeps its id across edits), so a retry sends only the labels still owed."""
    listing, chargers = await listings.active_chargers(db, listing_id, merchant_id)
    for charger in chargers:
        await part(f"label:{charger.id}", partial(send_label, bot, chat_id, t, listing, charger))
    return len(chargers)
