"""Reading a label from a photo, as a phone's camera would (zxing-cpp).

A rider whose camera app does not open links can send the bot a photo of the
label: the QR code in it is decoded and, when it is this bot's start link, the
charger's token comes back. Decoding is CPU work, so it runs in a thread.
"""

import asyncio
import io
from urllib.parse import parse_qs, urlsplit

import zxingcpp
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # a photo larger than this is not a phone's picture of a label


def _decode(data: bytes) -> list[str]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                return []
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return []
    return [code.text for code in zxingcpp.read_barcodes(rgb) if code.valid]


def start_token(text: str, bot_username: str) -> str | None:
    """The token of ``https://t.me/<this bot>?start=<token>``; another bot's link or
    anything else is None."""
    parts = urlsplit(text.strip())
    if parts.scheme not in {"https", "http"} or parts.netloc.lower() not in {
        "t.me",
        "telegram.me",
    }:
        return None
    if parts.path.strip("/").lower() != bot_username.lower():
        return None
    values = parse_qs(parts.query).get("start")
    return values[0] if values else None


async def label_token(data: bytes, bot_username: str) -> str | None:
    """The charger token of the first of this bot's labels in the image, if any."""
    for text in await asyncio.to_thread(_decode, data):
        token = start_token(text, bot_username)
        if token:
            return token
    return None
