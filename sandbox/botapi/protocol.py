"""The Bot API's wire protocol as this server speaks it: errors, limits, parameters.

Requests are decoded the way Telegram does it: aiogram sends plain strings as-is and
everything else JSON-encoded, in a urlencoded form, or multipart when it uploads
files. Errors use Telegram's status codes and descriptions, so aiogram raises the
same exception classes (``TelegramBadRequest``, ``TelegramRetryAfter``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

JsonDict = dict[str, Any]
MessagePredicate = Callable[[JsonDict], bool]

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"

TEXT_LIMIT = 4096  # UTF-16 code units, after entity parsing
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes


# Parameters that Telegram treats as strings even when they look like JSON
# ("123", "true"). Every other form value is JSON-decoded when possible, because
# aiogram JSON-encodes every non-string value (ints, bools, objects, lists).
_STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "certificate",
        "currency",
        "custom_emoji_id",
        "data",
        "description",
        "document",
        "emoji",
        "error_message",
        "file_id",
        "first_name",
        "foursquare_id",
        "foursquare_type",
        "google_place_id",
        "google_place_type",
        "inline_message_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "parse_mode",
        "payload",
        "phone_number",
        "photo",
        "photo_url",
        "pre_checkout_query_id",
        "provider_data",
        "provider_token",
        "query",
        "secret_token",
        "short_description",
        "start_parameter",
        "sticker",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
    }
)


class ApiError(Exception):
    """An error answered to the bot as ``{"ok": false, ...}``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JsonDict:
        body: JsonDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def decode_value(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel", a file_id, ...


def int_param(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad(f"invalid {name} specified") from None


def float_param(params: Mapping[str, Any], name: str) -> float:
    value = str_param(params, name)
    try:
        return float(value)
    except ValueError:
        raise bad(f"invalid {name} specified") from None


def str_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise bad(f"{name} is empty")
    return str(value)
