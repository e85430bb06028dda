"""A local, in-process Telegram Bot API server (the sandbox's Telegram, and the tests').

``FakeBotAPI`` is a real HTTP server (aiohttp) that speaks the Bot API wire
protocol, so an unmodified aiogram ``Bot`` with
``AiohttpSession(api=TelegramAPIServer.from_base(server.url))`` talks to it exactly
as it would talk to api.telegram.org, long-polling ``getUpdates`` included. With a
webhook set (``setWebhook``), updates are POSTed to its URL instead, as Telegram does.

Tests play the users (``send_text``, ``press_button``, ...), which queues updates
for the bot, and then inspect what the bot did (``history``, ``wait_for_message``,
``callback_answer``, ``requests``).

Fidelity notes:

* Requests are decoded the way Telegram does it: aiogram sends plain strings as-is
  and everything else JSON-encoded, in a urlencoded form, or multipart when it
  uploads files (``photo=attach://<part>``).
* ``parse_mode=HTML`` is parsed like Telegram's own parser (tdlib ``parse_html``):
  the stored and returned message has the *visible* text plus ``entities``, and
  malformed HTML (e.g. an unescaped ``<`` in a user's name) fails with
  ``Bad Request: can't parse entities: ...``. Markdown modes are accepted but not
  parsed (the text is stored verbatim).
* Errors use Telegram's status codes and descriptions, so aiogram raises the same
  exception classes (``TelegramBadRequest``, ``TelegramRetryAfter``, ...).
* Webhooks: while a URL is set, each update is POSTed to it as a JSON body, one at a
  time and in order, with ``X-Telegram-Bot-Api-Secret-Token`` when a ``secret_token``
  was given. A non-2xx answer or a connection error is retried with exponential
  backoff (``webhook_backoff``) and shows in ``getWebhookInfo``'s ``last_error_*``;
  ``getUpdates`` answers 409 meanwhile, ``deleteWebhook`` switches back to polling.
  A 2xx answer whose body is a Bot API call (``{"method": ...}``, JSON or form, as
  aiogram's "reply into webhook" sends) is executed, like Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import io
import json
import mimetypes
import re
import secrets
import struct
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any, Self
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from aiohttp.web_request import FileField

__all__ = [
    "FakeBotAPI",
    "HtmlParseError",
    "Upload",
    "buttons",
    "parse_html",
    "plain",
    "reply_buttons",
]

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

# Keys of history records that are bookkeeping of this fake, never sent to the bot.
_INTERNAL_KEYS = frozenset({"deleted", "keyboard"})

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
        "custom_emoji_id",
        "data",
        "description",
        "document",
        "emoji",
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
        "phone_number",
        "photo",
        "query",
        "secret_token",
        "short_description",
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

# Telegram's inline keyboard buttons must carry exactly one action.
_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "callback_game",
        "copy_text",
        "login_url",
        "pay",
        "switch_inline_query",
        "switch_inline_query_chosen_chat",
        "switch_inline_query_current_chat",
        "url",
        "web_app",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_BOT_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_API_PATH_RE = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[^/]+)/?$")
_FILE_PATH_RE = re.compile(r"^/file/bot(?P<token>[^/]+)/(?P<path>.+)$")


# --------------------------------------------------------------------------- helpers


def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def plain(msg: Mapping[str, Any] | str) -> str:
    """Return the visible text of a message (its text, else its caption).

    The server already parses ``parse_mode=HTML`` like Telegram does, so a message
    dict holds the text the user sees, without tags and with ``&lt;`` & co. decoded.
    A ``str`` argument is treated as raw HTML: tags are stripped and HTML entities
    unescaped (leniently, malformed markup does not raise).
    """
    if isinstance(msg, str):
        try:
            return parse_html(msg)[0]
        except HtmlParseError:
            return unescape(re.sub(r"<[^>]*>", "", msg))
    return str(msg.get("text") or msg.get("caption") or "")


def buttons(msg: Mapping[str, Any]) -> list[list[str]]:
    """Texts of the message's inline keyboard, row by row (``[]`` if it has none)."""
    markup = msg.get("reply_markup") or {}
    return [[button["text"] for button in row] for row in markup.get("inline_keyboard", [])]


def reply_buttons(msg: Mapping[str, Any]) -> list[list[str]]:
    """Texts of the reply (custom) keyboard the message showed, row by row.

    Telegram does not echo reply keyboards back in ``Message`` objects, so the
    server keeps the markup the bot sent in the record's internal ``keyboard`` key.
    """
    markup = msg.get("keyboard") or {}
    return [
        [button if isinstance(button, str) else button["text"] for button in row]
        for row in markup.get("keyboard", [])
    ]


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid solid-colour PNG, used as the default content of user photos."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Pixel size of an image, or ``None`` if it is not a readable image.

    Uses Pillow when it is installed (it is a project dependency); otherwise only
    PNG headers are understood and anything else is assumed to be a 1280x960 image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a project dependency
        if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        return 1280, 960
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _scaled(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    factor = min(1.0, longest / max(width, height, 1))
    return max(1, round(width * factor)), max(1, round(height * factor))


# --------------------------------------------------------------------------- HTML


class HtmlParseError(ValueError):
    """Malformed HTML; the message mirrors Telegram's ``can't parse entities`` reasons."""


_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_ALLOWED_TAGS = frozenset({*_SIMPLE_TAGS, "a", "code", "pre", "blockquote", "tg-emoji"})
_HTML_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """Decode the HTML entity at ``text[pos]`` (which is ``&``): (char, end) or None."""
    match = _HTML_ENTITY_RE.match(text, pos)
    if match is None:
        return None  # like Telegram, an unknown "&..." stays literal
    decimal, hexadecimal, name = match.groups()
    if name:
        return _NAMED_ENTITIES[name], match.end()
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def parse_html(
    source: str, users: Mapping[int, JsonDict] | None = None
) -> tuple[str, list[JsonDict]]:
    """Parse Telegram-flavoured HTML into ``(text, entities)``.

    A port of tdlib's ``parse_html``: only Telegram's tags are allowed, every
    ``<`` must start a tag, tags must nest properly, and entity offsets/lengths are
    in UTF-16 code units. ``users`` resolves ``tg://user?id=`` links to the
    ``text_mention`` user. Raises :class:`HtmlParseError` with Telegram's wording.
    """
    out: list[str] = []
    out_pos = 0  # UTF-16 length of "".join(out)
    entities: list[JsonDict] = []
    # (tag, argument, UTF-16 start, index into `out` where the tag's content starts)
    stack: list[tuple[str, str, int, int]] = []
    size = len(source)

    def byte_offset(index: int) -> int:
        return len(source[:index].encode())

    i = 0
    while i < size:
        char = source[i]
        if char == "&" and (decoded := _decode_entity(source, i)) is not None:
            out.append(decoded[0])
            out_pos += _utf16_len(decoded[0])
            i = decoded[1]
            continue
        if char != "<":
            out.append(char)
            out_pos += _utf16_len(char)
            i += 1
            continue

        begin = i
        i += 1
        if i < size and source[i] == "/":
            # ----- end tag
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
            j = i + 1
            while j < size and not source[j].isspace() and source[j] != ">":
                j += 1
            end_name = source[i + 1 : j].lower()
            while j < size and source[j].isspace():
                j += 1
            if j >= size or source[j] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
            tag, argument, start, start_index = stack.pop()
            if end_name and end_name != tag:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {byte_offset(begin)}, "
                    f'expected "</{tag}>", found "</{end_name}>"'
                )
            i = j + 1
            if out_pos > start:
                inner = "".join(out[start_index:])
                _close_entity(entities, tag, argument, start, out_pos - start, inner, users)
            continue

        # ----- start tag
        j = i
        while j < size and not source[j].isspace() and source[j] != ">":
            j += 1
        if j >= size:
            raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
        tag = source[i:j].lower()
        if tag not in _ALLOWED_TAGS:
            raise HtmlParseError(
                f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}'
            )
        argument = ""
        while j < size and source[j] != ">":
            while j < size and source[j].isspace():
                j += 1
            if j < size and source[j] == ">":
                break
            name_start = j
            while j < size and not source[j].isspace() and source[j] not in "=>":
                j += 1
            attribute = source[name_start:j]
            if not attribute:
                raise HtmlParseError(
                    f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(begin)}'
                )
            while j < size and source[j].isspace():
                j += 1
            if j >= size or source[j] != "=":
                raise HtmlParseError(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                    f"at byte offset {byte_offset(begin)}"
                )
            j += 1
            while j < size and source[j].isspace():
                j += 1
            if j >= size:
                raise HtmlParseError(
                    f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}'
                )
            value_chars: list[str] = []
            if source[j] in "'\"":
                quote = source[j]
                j += 1
                while j < size and source[j] != quote:
                    if source[j] == "&" and (decoded := _decode_entity(source, j)) is not None:
                        value_chars.append(decoded[0])
                        j = decoded[1]
                        continue
                    value_chars.append(source[j])
                    j += 1
                j += 1  # the closing quote
            else:
                token_start = j
                while j < size and (source[j].isalnum() or source[j] in ".-"):
                    j += 1
                value_chars.append(source[token_start:j].lower())
                if j < size and not source[j].isspace() and source[j] != ">":
                    raise HtmlParseError(
                        f"Unexpected end of name token at byte offset {byte_offset(token_start)}"
                    )
            if j >= size:
                raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            value = "".join(value_chars)
            if (tag, attribute) in (("a", "href"), ("tg-emoji", "emoji-id")):
                argument = value
            elif tag == "code" and attribute == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
            elif tag == "blockquote" and attribute == "expandable":
                argument = "1"
        if tag == "span" and argument != "spoiler":
            raise HtmlParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}'
            )
        stack.append((tag, argument, out_pos, len(out)))
        i = j + 1

    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)  # a language only means something inside <pre>
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_entity(
    entities: list[JsonDict],
    tag: str,
    argument: str,
    offset: int,
    length: int,
    inner_text: str,
    users: Mapping[int, JsonDict] | None,
) -> None:
    """Append the entity produced by a closed tag (merging <pre><code> like tdlib)."""
    last = entities[-1] if entities else None
    same_span = last is not None and last["offset"] == offset and last["length"] == length
    if tag in _SIMPLE_TAGS:
        entities.append({"type": _SIMPLE_TAGS[tag], "offset": offset, "length": length})
    elif tag == "a":
        url = argument or inner_text
        if match := re.fullmatch(r"tg://user\?id=(\d+)", url):
            user_id = int(match.group(1))
            user = (users or {}).get(user_id) or {"id": user_id, "is_bot": False, "first_name": ""}
            entities.append(
                {"type": "text_mention", "offset": offset, "length": length, "user": dict(user)}
            )
        elif url:
            if "://" not in url and not url.startswith("tg:"):
                url = f"http://{url}"
            entities.append({"type": "text_link", "offset": offset, "length": length, "url": url})
    elif tag == "code":
        if same_span and last is not None and last["type"] == "pre" and argument:
            last["language"] = argument
        else:
            entity = {"type": "code", "offset": offset, "length": length}
            if argument:
                entity["language"] = argument  # kept for a following </pre>
            entities.append(entity)
    elif tag == "pre":
        if same_span and last is not None and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif tag == "blockquote":
        kind = "expandable_blockquote" if argument else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})
    elif tag == "tg-emoji":
        entities.append(
            {
                "type": "custom_emoji",
                "offset": offset,
                "length": length,
                "custom_emoji_id": argument,
            }
        )


def _trim(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Strip surrounding whitespace like Telegram does, clipping entities to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    new_length = _utf16_len(stripped)
    clipped: list[JsonDict] = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(new_length, entity["offset"] + entity["length"] - lead)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped


# --------------------------------------------------------------------------- state


class _ApiError(Exception):
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


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


@dataclass(slots=True)
class Upload:
    """A file part received in a multipart request (logged in ``requests``)."""

    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:
        return f"Upload({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # "photo" or "document"
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    photo: list[JsonDict] | None = None  # the whole PhotoSize array this size belongs to


@dataclass(slots=True)
class _Entry:
    """A message of a chat plus the change counters ``wait_for_message`` relies on."""

    msg: JsonDict
    created: int
    edited: int = 0


@dataclass(slots=True)
class _Chat:
    info: JsonDict
    entries: list[_Entry] = field(default_factory=list)
    keyboard: JsonDict | None = None  # reply keyboard currently shown to the user

    @property
    def id(self) -> int:
        return int(self.info["id"])

    def entry(self, message_id: int) -> _Entry | None:
        """The live (not deleted) message with that id."""
        if 1 <= message_id <= len(self.entries):
            entry = self.entries[message_id - 1]
            if not entry.msg.get("deleted"):
                return entry
        return None


@dataclass(slots=True)
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None = None


@dataclass(slots=True)
class _Callback:
    query: JsonDict
    answer: JsonDict | None = None


def _public(msg: Mapping[str, Any]) -> JsonDict:
    """The Telegram ``Message`` object for a history record (without bookkeeping keys)."""
    return {key: copy.deepcopy(value) for key, value in msg.items() if key not in _INTERNAL_KEYS}


def _decode_value(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel", a file_id, ...


def _int_param(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid {name} specified") from None


def _float_param(params: Mapping[str, Any], name: str) -> float:
    value = _str_param(params, name)
    try:
        return float(value)
    except ValueError:
        raise _bad(f"invalid {name} specified") from None


def _str_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise _bad(f"{name} is empty")
    return str(value)


# --------------------------------------------------------------------------- server


class FakeBotAPI:
    """A local Telegram Bot API server with scriptable users, for tests.

    Usage::

        api = FakeBotAPI()
        await api.start()
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
        user = api.add_user(42, "Ann")
        api.send_text(42, 42, "/start")
        reply = await api.wait_for_message(42, lambda m: "Welcome" in plain(m))
        await api.stop()

    Private chat ids equal user ids, groups are supergroups with negative ids, and
    message ids are per chat, starting at 1. ``history()`` and friends return deep
    copies of the history records: Telegram ``Message`` dicts plus the internal
    keys ``deleted`` (True once deleted) and ``keyboard`` (the reply keyboard,
    removal or force-reply markup the bot sent, which Telegram does not echo back).
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_username: str = "chargeshare_test_bot",
        bot_id: int = 123456,
    ) -> None:
        """Create a stopped server for the bot with that token, username and id."""
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_user: JsonDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "ChargeShare Test Bot",
            "username": bot_username,
        }
        self.url = ""
        #: Every API call the bot made, decoded: (method name, params). Uploaded
        #: files appear as :class:`Upload`. ``getUpdates`` polls are not logged.
        self.requests: list[tuple[str, JsonDict]] = []

        self._users: dict[int, JsonDict] = {}
        self._chats: dict[int, _Chat] = {}
        self._blocked: set[int] = set()
        self._files: dict[str, _StoredFile] = {}
        self._file_counter = 0
        self._callbacks: dict[str, _Callback] = {}
        self._callback_counter = 0
        self._commands: dict[tuple[str, str], list[JsonDict]] = {}
        self._webhook: JsonDict = {}
        self._failures: dict[str, list[_Failure]] = {}

        self._updates: list[JsonDict] = []  # queued, not yet confirmed by an offset
        self._last_update_id = 0
        self._delivered_upto = 0  # highest update_id returned by getUpdates
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._active_polls = 0  # getUpdates requests currently being served

        self._seq = 0  # global change counter, see _Entry
        self._changed = asyncio.Event()
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._closing = False
        self._runner: web.AppRunner | None = None

        #: Webhook retry delays: (first, longest) seconds, doubling after each failure.
        self.webhook_backoff: tuple[float, float] = (0.05, 5.0)
        #: How long one webhook POST may take before it counts as failed.
        self.webhook_timeout: float = 60.0
        #: Every webhook POST attempt: (update_id, HTTP status or None on a
        #: connection error, seconds waited before the attempt).
        self.webhook_attempts: list[tuple[int, int | None, float]] = []
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_error: JsonDict = {}

        handlers: dict[str, Callable[[JsonDict], Any]] = {
            "getMe": self._get_me,
            "logOut": self._ok,
            "close": self._ok,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendLocation": self._send_location,
            "sendVenue": self._send_venue,
            "sendContact": self._send_contact,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
        }
        # Telegram matches method names case-insensitively.
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one) and set ``url``."""
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads up to Telegram's 50MB
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a long poll whose client went away (stop_polling)
        # must not linger until its timeout.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._closing = False

    async def stop(self) -> None:
        """Stop the server; pending long polls return an empty result first."""
        self._closing = True
        self._notify()
        await self._stop_webhook_delivery()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ registry

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        language_code: str = "en",
        username: str | None = None,
    ) -> JsonDict:
        """Register a user (and their private chat with the bot); return the User dict."""
        if user_id <= 0:
            raise ValueError("user ids must be positive")
        user: JsonDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        chat_info: JsonDict = {"id": user_id, "type": "private", "first_name": first_name}
        if username:
            user["username"] = username
            chat_info["username"] = username
        self._users[user_id] = user
        if user_id in self._chats:
            self._chats[user_id].info = chat_info
        else:
            self._chats[user_id] = _Chat(chat_info)
        return dict(user)

    def add_group(self, chat_id: int, title: str) -> JsonDict:
        """Register a supergroup (``chat_id`` must be negative); return the Chat dict."""
        if chat_id >= 0:
            raise ValueError("group chat ids must be negative")
        info: JsonDict = {"id": chat_id, "type": "supergroup", "title": title}
        if chat_id in self._chats:
            self._chats[chat_id].info = info
        else:
            self._chats[chat_id] = _Chat(info)
        return dict(info)

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """Make the user block (or unblock) the bot: sends then fail with 403."""
        self._user(user_id)
        if blocked:
            self._blocked.add(user_id)
        else:
            self._blocked.discard(user_id)

    # ------------------------------------------------------------------ acting as people

    def send_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to_message_id: int | None = None,
    ) -> JsonDict:
        """The user sends ``text`` to the chat; queues a ``message`` update.

        A leading ``/command`` (also ``/command@botname``) gets a ``bot_command``
        entity, like Telegram clients produce.
        """
        chat, user = self._acting(chat_id, user_id)
        content: JsonDict = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        reply_to = None
        if reply_to_message_id is not None:
            target = chat.entry(reply_to_message_id)
            if target is None:
                raise ValueError(f"chat {chat_id} has no message {reply_to_message_id}")
            reply_to = self._reply_snapshot(target.msg)
        return self._user_message(chat, user, content, reply_to=reply_to)

    def send_photo(
        self,
        chat_id: int,
        user_id: int,
        *,
        data: bytes | None = None,
        caption: str | None = None,
    ) -> JsonDict:
        """The user sends a photo (a generated PNG unless ``data`` is given).

        The message carries two ``PhotoSize`` entries (thumbnail and full size),
        each with its own ``file_id``; both download as ``data``.
        """
        chat, user = self._acting(chat_id, user_id)
        if data is None:
            shade = (self._file_counter * 37) % 256
            data = _png(64, 48, (shade, 128, 255 - shade))
        content: JsonDict = {"photo": self._store_photo(data)}
        if caption:
            content["caption"] = caption
        return self._user_message(chat, user, content)

    def send_document(
        self, chat_id: int, user_id: int, data: bytes, file_name: str, mime_type: str
    ) -> JsonDict:
        """The user sends a file as a document."""
        chat, user = self._acting(chat_id, user_id)
        stored = self._store_file("document", data, file_name=file_name, mime_type=mime_type)
        return self._user_message(chat, user, {"document": self._document_dict(stored)})

    def send_contact(
        self,
        chat_id: int,
        user_id: int,
        phone_number: str,
        first_name: str,
        *,
        contact_user_id: int | None = None,
    ) -> JsonDict:
        """The user shares a contact (pass ``contact_user_id=user_id`` for "share my phone")."""
        chat, user = self._acting(chat_id, user_id)
        contact: JsonDict = {"phone_number": phone_number, "first_name": first_name}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self._user_message(chat, user, {"contact": contact})

    def send_location(
        self, chat_id: int, user_id: int, latitude: float, longitude: float
    ) -> JsonDict:
        """The user shares a location."""
        chat, user = self._acting(chat_id, user_id)
        location = {"latitude": latitude, "longitude": longitude}
        return self._user_message(chat, user, {"location": location})

    def send_venue(
        self,
        chat_id: int,
        user_id: int,
        latitude: float,
        longitude: float,
        title: str,
        address: str,
    ) -> JsonDict:
        """The user shares a venue (Telegram sets both ``venue`` and ``location``)."""
        chat, user = self._acting(chat_id, user_id)
        location = {"latitude": latitude, "longitude": longitude}
        venue = {"location": dict(location), "title": title, "address": address}
        return self._user_message(chat, user, {"venue": venue, "location": location})

    def press(self, chat_id: int, user_id: int, message_id: int, callback_data: str) -> str:
        """The user presses an inline button; returns the callback query id.

        The ``callback_data`` is not checked against the keyboard, so tests can
        also forge stale or malicious data. The update carries the current state
        of the bot message.
        """
        chat, user = self._acting(chat_id, user_id)
        entry = chat.entry(message_id)
        if entry is None:
            raise AssertionError(f"chat {chat_id} has no (undeleted) message {message_id}")
        if entry.msg["from"]["id"] != self.bot_id:
            raise AssertionError(f"message {message_id} in chat {chat_id} is not the bot's")
        self._callback_counter += 1
        query_id = f"{self.bot_id}{self._callback_counter:012d}"
        query: JsonDict = {
            "id": query_id,
            "from": dict(user),
            "message": _public(entry.msg),
            "chat_instance": str(abs(chat.id) * 7919 + self.bot_id),
            "data": callback_data,
        }
        self._callbacks[query_id] = _Callback(query)
        self._enqueue("callback_query", query)
        return query_id

    def press_button(self, chat_id: int, user_id: int, message_id: int, text_contains: str) -> str:
        """Press the first inline button whose text contains ``text_contains``.

        Raises AssertionError listing the message's buttons if none matches (or
        the match is not a callback button).
        """
        chat = self._chat(chat_id)
        entry = chat.entry(message_id)
        if entry is None:
            raise AssertionError(f"chat {chat_id} has no (undeleted) message {message_id}")
        markup = entry.msg.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if text_contains in button["text"]:
                    if "callback_data" not in button:
                        raise AssertionError(
                            f"button {button['text']!r} of message {message_id} has no "
                            f"callback_data: {button}"
                        )
                    return self.press(chat_id, user_id, message_id, button["callback_data"])
        raise AssertionError(
            f"no inline button containing {text_contains!r} on message {message_id} in chat "
            f"{chat_id}; buttons: {buttons(entry.msg)}; text: {plain(entry.msg)!r}"
        )

    @property
    def pending_updates(self) -> int:
        """How many queued updates have not been returned by ``getUpdates`` yet."""
        return sum(1 for update in self._updates if update["update_id"] > self._delivered_upto)

    def update_count(self) -> int:
        """Same as :attr:`pending_updates`, as a method."""
        return self.pending_updates

    # ------------------------------------------------------------------ inspection

    def history(self, chat_id: int) -> list[JsonDict]:
        """Every message of the chat in order, current state, deleted ones included."""
        return [copy.deepcopy(entry.msg) for entry in self._chat(chat_id).entries]

    def bot_messages(self, chat_id: int) -> list[JsonDict]:
        """The bot's messages in the chat, excluding deleted ones."""
        return [
            copy.deepcopy(entry.msg)
            for entry in self._chat(chat_id).entries
            if entry.msg["from"]["id"] == self.bot_id and not entry.msg.get("deleted")
        ]

    def last_message_id(self, chat_id: int) -> int:
        """Id of the newest message in the chat (0 if empty): a handy ``after=`` cursor."""
        return len(self._chat(chat_id).entries)

    def reply_keyboard(self, chat_id: int) -> list[list[str]]:
        """Texts of the reply keyboard the user currently sees in the chat."""
        keyboard = self._chat(chat_id).keyboard
        return reply_buttons({"keyboard": keyboard}) if keyboard else []

    def callback_answer(self, callback_query_id: str) -> JsonDict | None:
        """The ``answerCallbackQuery`` params for that query, or None if unanswered."""
        callback = self._callbacks.get(callback_query_id)
        if callback is None:
            raise KeyError(f"unknown callback query id {callback_query_id!r}")
        return copy.deepcopy(callback.answer)

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """The command list set by ``setMyCommands`` for that scope and language."""
        return copy.deepcopy(self._commands.get(self._commands_key(scope, language_code), []))

    def calls(self, method: str) -> list[JsonDict]:
        """Params of every logged call of ``method`` (case-insensitive)."""
        return [params for name, params in self.requests if name.lower() == method.lower()]

    def file_bytes(self, file_id: str) -> bytes:
        """Content of a stored file (uploaded by the bot or sent by a user)."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(f"unknown file_id {file_id!r}")
        return stored.data

    def format_history(self, chat_id: int, limit: int = 15) -> str:
        """A readable dump of the chat's last ``limit`` messages (for assertion errors)."""
        lines = []
        for entry in self._chat(chat_id).entries[-limit:]:
            msg = entry.msg
            who = "bot" if msg["from"]["id"] == self.bot_id else msg["from"].get("first_name")
            kind = next(
                (k for k in ("photo", "document", "location", "venue", "contact") if k in msg),
                "",
            )
            line = f"  #{msg['message_id']} [{who}]{f' <{kind}>' if kind else ''} {plain(msg)!r}"
            if inline := buttons(msg):
                line += f" buttons={inline}"
            if keyboard := reply_buttons(msg):
                line += f" keyboard={keyboard}"
            if "edit_date" in msg:
                line += " (edited)"
            if msg.get("deleted"):
                line += " (deleted)"
            lines.append(line)
        return "\n".join(lines) or "  (no messages)"

    @property
    def version(self) -> int:
        """A counter that grows whenever a message is added, edited or deleted."""
        return self._seq

    async def wait_for_change(self, since: int, timeout: float) -> int:  # noqa: ASYNC109
        """Wait until :attr:`version` differs from ``since`` (or ``timeout``); return it."""
        deadline = time.monotonic() + timeout
        while self._seq == since and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._wait_change(remaining)
        return self._seq

    def keyboard_markup(self, chat_id: int) -> JsonDict | None:
        """The reply keyboard markup the user currently sees in the chat, as the bot sent it."""
        keyboard = self._chat(chat_id).keyboard
        return copy.deepcopy(keyboard) if keyboard else None

    def chat_info(self, chat_id: int) -> JsonDict:
        """The Chat dict of a registered chat."""
        return dict(self._chat(chat_id).info)

    def user_info(self, user_id: int) -> JsonDict:
        """The User dict of a registered user."""
        return dict(self._user(user_id))

    def store_photo(self, data: bytes) -> list[JsonDict]:
        """Store an image as Telegram stores a photo; returns its ``PhotoSize`` list.

        For data prepared outside a chat (a sandbox's demo listings): the bot can send
        it by the ``file_id`` of the last (largest) size.
        """
        size = _image_size(data)
        if size is None:
            raise ValueError("not an image")
        return self._store_photo(data, size)

    def file_info(self, file_id: str) -> tuple[bytes, str]:
        """Content and MIME type of a stored file."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(f"unknown file_id {file_id!r}")
        return stored.data, stored.mime_type or "application/octet-stream"

    # ------------------------------------------------------------------ waiting

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: MessagePredicate | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain number is friendlier in tests
        after: int = 0,
    ) -> JsonDict:
        """Wait for a bot message in the chat that matches ``predicate``.

        Candidates are the bot's undeleted messages with ``message_id > after``
        and older ones edited after message ``after`` was sent, checked in
        message-id order; the first match is returned (a deep copy). Raises
        AssertionError with the chat's recent history on timeout.
        """
        chat = self._chat(chat_id)
        # Edits count only if they happened after message `after` was sent.
        newest_seen = min(after, len(chat.entries))
        since = chat.entries[newest_seen - 1].created if newest_seen > 0 else 0
        deadline = time.monotonic() + timeout
        while True:
            for entry in chat.entries:
                msg = entry.msg
                if msg["from"]["id"] != self.bot_id or msg.get("deleted"):
                    continue
                if msg["message_id"] <= after and entry.edited <= since:
                    continue
                snapshot = copy.deepcopy(msg)
                if predicate is None or predicate(snapshot):
                    return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                wanted = "a message" if predicate is None else "a message matching the predicate"
                raise AssertionError(
                    f"the bot sent/edited no {wanted} in chat {chat_id} (after #{after}) "
                    f"within {timeout}s; recent history:\n{self.format_history(chat_id)}"
                )
            await self._wait_change(remaining)

    async def wait_for_callback_answer(
        self,
        callback_query_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain number is friendlier in tests
    ) -> JsonDict:
        """Wait until the bot answered that callback query; return the answer params."""
        if callback_query_id not in self._callbacks:
            raise KeyError(f"unknown callback query id {callback_query_id!r}")
        callback = self._callbacks[callback_query_id]
        deadline = time.monotonic() + timeout
        while callback.answer is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                chat_id = callback.query["message"]["chat"]["id"]
                raise AssertionError(
                    f"callback query {callback_query_id} (data={callback.query['data']!r}) "
                    f"was not answered within {timeout}s; recent history:\n"
                    f"{self.format_history(chat_id)}"
                )
            await self._wait_change(remaining)
        return copy.deepcopy(callback.answer)

    async def wait_for_poller(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot is polling (a ``getUpdates`` request is being served)."""
        deadline = time.monotonic() + timeout
        while self._active_polls == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the bot did not call getUpdates within {timeout}s")
            await self._wait_change(remaining)

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every queued update was fetched and the bot has been quiet.

        "Quiet" means no API request in flight and none started or finished for
        ``quiet`` seconds (long polls do not count). Raises AssertionError on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            busy = self.pending_updates > 0 or self._inflight > 0
            idle_for = now - self._last_activity
            if not busy and idle_for >= quiet:
                return
            if now >= deadline:
                raise AssertionError(
                    f"not idle after {timeout}s: {self.pending_updates} updates never fetched "
                    f"(is polling running?), {self._inflight} requests in flight"
                )
            wait = (deadline - now) if busy else (quiet - idle_for)
            await self._wait_change(max(0.001, min(wait, deadline - now)))

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        description: str = "Too Many Requests: retry after 1",
        retry_after: int | None = 1,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (case-insensitive) fail;
        with ``chat_id``, only the calls to that chat.

        The failure is answered like Telegram does (HTTP status = ``error_code``,
        ``parameters.retry_after`` when given), without executing the method.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        failure = _Failure(error_code, description, retry_after, times, chat_id)
        self._failures.setdefault(method.lower(), []).append(failure)

    def _take_failure(self, method: str, params: JsonDict) -> _ApiError | None:
        queue = self._failures.get(method.lower(), [])
        chat = params.get("chat_id")
        failure = next((f for f in queue if f.chat_id is None or str(f.chat_id) == str(chat)), None)
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.remove(failure)
        return _ApiError(failure.error_code, failure.description, failure.retry_after)

    # ------------------------------------------------------------------ HTTP layer

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if match := _FILE_PATH_RE.match(request.path):
            return self._download(match["token"], match["path"])
        match = _API_PATH_RE.match(request.path)
        if match is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        if match["token"] != self.token:
            return web.json_response(_ApiError(401, "Unauthorized").body(), status=401)

        try:
            params = await self._read_params(request)
        except _ApiError as error:
            return web.json_response(error.body(), status=error.error_code)

        method = match["method"]
        name, handler = self._methods.get(method.lower(), (method, None))
        polling = name == "getUpdates"
        if not polling:
            self.requests.append((name, params))
        if handler is None:
            error = _ApiError(404, "Not Found: method not found")
            return web.json_response(error.body(), status=404)
        if (failure := self._take_failure(name, params)) is not None:
            return web.json_response(failure.body(), status=failure.error_code)

        if not polling:
            self._inflight += 1
            self._touch()
        try:
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except _ApiError as error:
            return web.json_response(error.body(), status=error.error_code)
        finally:
            if not polling:
                self._inflight -= 1
                self._touch()
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> JsonDict:
        """Decode query string + body (urlencoded, multipart or JSON) into typed params."""
        params: JsonDict = {key: _decode_value(key, value) for key, value in request.query.items()}
        uploads: dict[str, Upload] = {}
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON body") from None
            if not isinstance(body, dict):
                raise _bad("JSON body must be an object")
            params.update(body)
        elif request.body_exists:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, FileField):
                    uploads[key] = Upload(
                        filename=value.filename,
                        content_type=value.content_type,
                        data=value.file.read(),
                    )
                else:
                    params[key] = _decode_value(key, str(value))
        # aiogram uploads every InputFile as `photo=attach://<random part name>`.
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                part = value.removeprefix("attach://")
                if part not in uploads:
                    raise _bad(f"file {part!r} referenced by {key} was not uploaded")
                params[key] = uploads.pop(part)
        params.update(uploads)  # parts sent directly under the parameter's name
        return params

    def _download(self, token: str, path: str) -> web.Response:
        if token != self.token:
            return web.json_response(_ApiError(401, "Unauthorized").body(), status=401)
        for stored in self._files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.data, content_type=stored.mime_type or "application/octet-stream"
                )
        return web.json_response(_ApiError(404, "Not Found").body(), status=404)

    # ------------------------------------------------------------------ bookkeeping

    def _notify(self) -> None:
        """Wake every waiter (long polls, wait_* helpers); they re-check their condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:  # noqa: ASYNC109
        # No await happens between a caller's check and this wait, so no change is missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _touch(self) -> None:
        self._last_activity = time.monotonic()
        self._notify()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _user(self, user_id: int) -> JsonDict:
        user = self._users.get(user_id)
        if user is None:
            raise KeyError(f"user {user_id} is not registered; call add_user() first")
        return user

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"chat {chat_id} is not registered; call add_user()/add_group()")
        return chat

    def _acting(self, chat_id: int, user_id: int) -> tuple[_Chat, JsonDict]:
        user = self._user(user_id)
        chat = self._chat(chat_id)
        if chat.info["type"] == "private" and chat_id != user_id:
            raise ValueError(f"user {user_id} cannot write in the private chat of {chat_id}")
        return chat, user

    def _enqueue(self, kind: str, payload: JsonDict) -> None:
        self._last_update_id += 1
        self._updates.append({"update_id": self._last_update_id, kind: copy.deepcopy(payload)})
        self._touch()

    def _user_message(
        self, chat: _Chat, user: JsonDict, content: JsonDict, *, reply_to: JsonDict | None = None
    ) -> JsonDict:
        msg = self._add_message(chat, dict(user), content, reply_to=reply_to)
        self._enqueue("message", _public(msg))
        return copy.deepcopy(msg)

    def _add_message(
        self,
        chat: _Chat,
        sender: JsonDict,
        content: JsonDict,
        *,
        reply_to: JsonDict | None = None,
        inline_markup: JsonDict | None = None,
        keyboard: JsonDict | None = None,
    ) -> JsonDict:
        msg: JsonDict = {
            "message_id": len(chat.entries) + 1,
            "from": sender,
            "chat": dict(chat.info),
            "date": int(time.time()),
        }
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        msg.update({key: value for key, value in content.items() if value not in (None, [], "")})
        if inline_markup is not None:
            msg["reply_markup"] = inline_markup
        if keyboard is not None:
            msg["keyboard"] = keyboard
            if "keyboard" in keyboard:
                chat.keyboard = keyboard
            elif keyboard.get("remove_keyboard"):
                chat.keyboard = None
        chat.entries.append(_Entry(msg, self._next_seq()))
        self._notify()
        return msg

    @staticmethod
    def _reply_snapshot(msg: JsonDict) -> JsonDict:
        snapshot = _public(msg)
        snapshot.pop("reply_to_message", None)  # Telegram nests only one level
        return snapshot

    # ------------------------------------------------------------------ files

    def _store_file(
        self,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        extension: str = "",
    ) -> _StoredFile:
        self._file_counter += 1
        n = self._file_counter
        prefix = "AgAC" if kind == "photo" else "BQAC"
        folder = "photos" if kind == "photo" else "documents"
        if not extension and file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1]
        stored = _StoredFile(
            file_id=f"{prefix}AgIAAxkBAAI{n:05d}{secrets.token_urlsafe(12)}",
            file_unique_id=f"AQAD{n:05d}{secrets.token_hex(3)}",
            kind=kind,
            data=data,
            file_path=f"{folder}/file_{n}{extension}",
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        return stored

    def _store_photo(self, data: bytes, size: tuple[int, int] | None = None) -> list[JsonDict]:
        """Store a photo as Telegram does: a thumbnail and a full size, each a file."""
        size = size or _image_size(data) or (1280, 960)
        sizes: list[JsonDict] = []
        files = []
        for longest in (90, 1280):
            width, height = _scaled(size, longest)
            stored = self._store_file("photo", data, mime_type="image/jpeg", extension=".jpg")
            files.append(stored)
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(data),
                    "width": width,
                    "height": height,
                }
            )
        for stored in files:
            stored.photo = sizes
        return copy.deepcopy(sizes)

    @staticmethod
    def _document_dict(stored: _StoredFile) -> JsonDict:
        document: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return document

    def _existing_file(self, value: str, kind: str) -> _StoredFile:
        stored = self._files.get(value)
        if stored is None:
            if value.startswith(("http://", "https://")):
                # Telegram would download the URL; tests stay offline, so store a stub.
                return self._store_file(kind, b"", file_name=value.rsplit("/", 1)[-1] or None)
            raise _bad("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise _bad("type of file mismatch")
        return stored

    # ------------------------------------------------------------------ method helpers

    def _target_chat(self, params: JsonDict) -> _Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat: _Chat | None = None
        if isinstance(raw, int) or (isinstance(raw, str) and re.fullmatch(r"-?\d+", raw)):
            chat = self._chats.get(int(raw))
        elif isinstance(raw, str) and raw.startswith("@"):
            chat = next(
                (c for c in self._chats.values() if c.info.get("username") == raw[1:]), None
            )
        if chat is None:
            raise _bad("chat not found")
        if chat.id in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _formatted(
        self, params: JsonDict, key: str, entities_key: str, limit: int
    ) -> tuple[str, list[JsonDict]]:
        """Visible text and entities of a text/caption parameter, as Telegram stores it."""
        raw = params.get(key)
        text = "" if raw is None else str(raw)
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            try:
                text, entities = parse_html(text, self._users)
            except HtmlParseError as error:
                raise _bad(f"can't parse entities: {error}") from None
        elif mode.lower() in ("", "markdown", "markdownv2"):
            # Markdown is stored verbatim: this fake only implements Telegram's HTML.
            entities = list(params.get(entities_key) or []) if not mode else []
        else:
            raise _bad("unsupported parse_mode")
        text, entities = _trim(text, entities)
        if _utf16_len(text) > limit:
            raise _bad("message is too long" if key == "text" else "message caption is too long")
        return text, entities

    def _reply_to(self, chat: _Chat, params: JsonDict) -> JsonDict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id = _int_param(reply, "message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply"))
            if reply.get("chat_id") not in (None, chat.id):
                chat = self._target_chat({"chat_id": reply["chat_id"]})
        else:
            message_id = _int_param(params, "reply_to_message_id")
            allow_missing = bool(params.get("allow_sending_without_reply"))
        if message_id is None:
            return None
        target = chat.entry(message_id)
        if target is None:
            if allow_missing:
                return None
            raise _bad("message to be replied not found")
        return self._reply_snapshot(target.msg)

    @staticmethod
    def _check_inline_keyboard(markup: JsonDict) -> JsonDict:
        rows = markup.get("inline_keyboard")
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('can\'t parse inline keyboard: field "inline_keyboard" must be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad("can't parse inline keyboard button: Text must be non-empty")
                if not _BUTTON_ACTIONS & button.keys():
                    raise _bad(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise _bad("BUTTON_DATA_INVALID")
        return markup

    def _send_markup(self, params: JsonDict) -> tuple[JsonDict | None, JsonDict | None]:
        """(inline markup for the Message, other markup kept internally) of a send."""
        markup = params.get("reply_markup")
        if markup is None:
            return None, None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return self._check_inline_keyboard(markup), None
        if "keyboard" in markup or markup.get("remove_keyboard") or markup.get("force_reply"):
            return None, markup
        raise _bad("can't parse reply keyboard markup JSON object")

    def _edit_markup(self, params: JsonDict) -> JsonDict | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None  # like Telegram, an edit without reply_markup removes the keyboard
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            raise _bad("inline keyboard expected")
        if not markup["inline_keyboard"]:
            return None
        return self._check_inline_keyboard(markup)

    def _bot_send(self, params: JsonDict, content: JsonDict, chat: _Chat | None = None) -> JsonDict:
        chat = chat or self._target_chat(params)
        inline, keyboard = self._send_markup(params)
        reply_to = self._reply_to(chat, params)
        msg = self._add_message(
            chat,
            dict(self.bot_user),
            content,
            reply_to=reply_to,
            inline_markup=inline,
            keyboard=keyboard,
        )
        return _public(msg)

    def _editable(self, params: JsonDict) -> tuple[_Chat, _Entry]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID (inline messages are not supported by FakeBotAPI)")
        chat = self._target_chat(params)
        entry = chat.entry(_int_param(params, "message_id") or 0)
        if entry is None:
            raise _bad("message to edit not found")
        if entry.msg["from"]["id"] != self.bot_id:
            raise _bad("message can't be edited")
        return chat, entry

    def _commit_edit(self, entry: _Entry, content: JsonDict, markup: JsonDict | None) -> JsonDict:
        msg = entry.msg

        def normalized(value: Any) -> Any:
            return None if value in (None, [], "") else value

        unchanged = all(
            normalized(msg.get(key)) == normalized(value) for key, value in content.items()
        ) and normalized(msg.get("reply_markup")) == normalized(markup)
        if unchanged:
            raise _bad(NOT_MODIFIED)
        for key, value in {**content, "reply_markup": markup}.items():
            if normalized(value) is None:
                msg.pop(key, None)
            else:
                msg[key] = copy.deepcopy(value)
        msg["edit_date"] = int(time.time())
        entry.edited = self._next_seq()
        self._notify()
        return _public(msg)

    # ------------------------------------------------------------------ API methods

    def _ok(self, params: JsonDict) -> bool:
        return True

    def _get_me(self, params: JsonDict) -> JsonDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        if self._webhook.get("url"):
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int_param(params, "offset")
        limit = min(100, max(1, _int_param(params, "limit", 100) or 100))
        timeout = max(0, _int_param(params, "timeout", 0) or 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):  # remembered across calls, like Telegram
            self._allowed_updates = frozenset(allowed) or None
        if offset:
            # A positive offset confirms every earlier update; a negative one keeps
            # only the last -offset updates.
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            else:
                self._updates = self._updates[offset:]

        # A newer getUpdates terminates an older one, like Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._active_polls += 1
        self._notify()
        try:
            batch = await self._poll(generation, limit, timeout)
        finally:
            self._active_polls -= 1
        if batch:
            self._delivered_upto = max(self._delivered_upto, batch[-1]["update_id"])
            self._touch()
        return copy.deepcopy(batch)

    async def _poll(self, generation: int, limit: int, seconds: int) -> list[JsonDict]:
        """Wait up to ``seconds`` for deliverable updates (the long poll)."""
        deadline = time.monotonic() + seconds
        while True:
            if self._webhook.get("url"):
                raise _ApiError(
                    409,
                    "Conflict: terminated by setWebhook request; "
                    "use deleteWebhook to delete the webhook first",
                )
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if self._allowed_updates is not None:
                # Updates of types the bot did not ask for are dropped, not kept.
                self._updates = [u for u in self._updates if self._is_allowed(u)]
            batch = self._updates[:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return batch
            await self._wait_change(remaining)

    def _is_allowed(self, update: JsonDict) -> bool:
        assert self._allowed_updates is not None
        return any(key in self._allowed_updates for key in update if key != "update_id")

    def _set_webhook(self, params: JsonDict) -> bool:
        url = str(params.get("url") or "")
        if not url:  # Telegram: an empty URL removes the webhook
            return self._delete_webhook(params)
        if not url.startswith(("http://", "https://")):
            # Telegram wants HTTPS; a local server also takes http:// for local bots
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _bad("secret token contains unallowed characters")
        self._webhook = {key: value for key, value in params.items() if key != "certificate"}
        self._webhook_error = {}
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        if params.get("drop_pending_updates"):
            self._drop_pending_updates()
        self._poll_generation += 1  # a running long poll ends with 409
        self._touch()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        return True

    def _delete_webhook(self, params: JsonDict) -> bool:
        self._webhook = {}
        self._webhook_error = {}
        if params.get("drop_pending_updates"):
            self._drop_pending_updates()
        self._touch()  # the delivery task sees no URL and ends
        return True

    async def _stop_webhook_delivery(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver_webhooks(self) -> None:
        """POST queued updates to the webhook, in order, until the webhook is removed."""
        first, longest = self.webhook_backoff
        delay = 0.0
        async with aiohttp.ClientSession() as http:
            while not self._closing:
                url = str(self._webhook.get("url") or "")
                if not url:
                    return
                if self._allowed_updates is not None:
                    self._updates = [u for u in self._updates if self._is_allowed(u)]
                if not self._updates:
                    delay = 0.0
                    await self._wait_change(30)
                    continue
                update = self._updates[0]
                if delay:
                    await asyncio.sleep(delay)
                    if self._webhook.get("url") != url or not self._updates:
                        continue  # changed meanwhile: start over
                    update = self._updates[0]
                _status, error = await self._post_update(http, url, update, delay)
                if error is None:
                    delay = 0.0
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                    self._delivered_upto = max(self._delivered_upto, update["update_id"])
                    self._touch()
                else:
                    self._webhook_error = {
                        "last_error_date": int(time.time()),
                        "last_error_message": error,
                    }
                    delay = min(longest, max(first, delay * 2))

    async def _post_update(
        self, http: aiohttp.ClientSession, url: str, update: JsonDict, waited: float
    ) -> tuple[int | None, str | None]:
        """One delivery attempt: (HTTP status, error message or None on success)."""
        headers = {"Content-Type": "application/json"}
        if secret := self._webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(secret)
        self._inflight += 1
        self._touch()
        status: int | None = None
        try:
            async with http.post(
                url,
                data=json.dumps(update, ensure_ascii=False),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    return status, f"Wrong response from the webhook: {status} {response.reason}"
                await self._run_webhook_reply(response)
                return status, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"Connection failed: {type(exc).__name__}: {exc}".rstrip(": ")
        finally:
            self.webhook_attempts.append((update["update_id"], status, waited))
            self._inflight -= 1
            self._touch()

    async def _run_webhook_reply(self, response: aiohttp.ClientResponse) -> None:
        """Execute a Bot API call sent back as the webhook's answer (errors are dropped)."""
        params: JsonDict = {}
        uploads: dict[str, Upload] = {}
        if response.content_type == "application/json":
            with contextlib.suppress(ValueError):
                body = await response.json(content_type=None)
                if isinstance(body, dict):
                    params.update(body)
        elif response.content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader(response.headers, response.content)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                    continue
                if part.filename:
                    data = bytes(await part.read(decode=True))
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    uploads[part.name] = Upload(part.filename, content_type, data)
                else:
                    params[part.name] = _decode_value(part.name, await part.text())
        elif response.content_type == "application/x-www-form-urlencoded":
            for key, value in parse_qsl(await response.text()):
                params[key] = _decode_value(key, value)
        method = str(params.pop("method", "") or "")
        if not method:
            return
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                part_name = value.removeprefix("attach://")
                if part_name in uploads:
                    params[key] = uploads.pop(part_name)
        params.update(uploads)
        name, handler = self._methods.get(method.lower(), (method, None))
        if handler is None or name in ("getUpdates", "setWebhook", "deleteWebhook"):
            return
        self.requests.append((name, params))
        with contextlib.suppress(_ApiError):
            result = handler(params)
            if inspect.isawaitable(result):
                await result

    def _drop_pending_updates(self) -> None:
        self._delivered_upto = self._last_update_id
        self._updates.clear()
        self._touch()

    def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {
            "url": str(self._webhook.get("url", "")),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
            **self._webhook_error,
        }
        if self._webhook.get("max_connections"):
            info["max_connections"] = int(self._webhook["max_connections"])
        if allowed := self._webhook.get("allowed_updates"):
            info["allowed_updates"] = allowed
        return info

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(language_code or "")

    def _set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("command description must be non-empty")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, params: JsonDict) -> list[JsonDict]:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: JsonDict) -> bool:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands.pop(key, None)
        return True

    def _send_message(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        text, entities = self._formatted(params, "text", "entities", TEXT_LIMIT)
        if not text:
            raise _bad("message text is empty")
        return self._bot_send(params, {"text": text, "entities": entities}, chat)

    def _send_photo(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        caption, entities = self._formatted(params, "caption", "caption_entities", CAPTION_LIMIT)
        photo = params.get("photo")
        if isinstance(photo, Upload):
            size = _image_size(photo.data)
            if size is None:
                raise _bad("IMAGE_PROCESS_FAILED")
            sizes = self._store_photo(photo.data, size)
        elif isinstance(photo, str) and photo:
            stored = self._existing_file(photo, "photo")
            if stored.photo is None:  # a URL stub
                stored.photo = self._store_photo(stored.data, (1280, 960))
            sizes = copy.deepcopy(stored.photo)
        else:
            raise _bad("there is no photo in the request")
        content = {"photo": sizes, "caption": caption, "caption_entities": entities}
        return self._bot_send(params, content, chat)

    def _send_document(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        caption, entities = self._formatted(params, "caption", "caption_entities", CAPTION_LIMIT)
        document = params.get("document")
        if isinstance(document, Upload):
            guessed = mimetypes.guess_type(document.filename)[0]
            stored = self._store_file(
                "document",
                document.data,
                file_name=document.filename,
                mime_type=guessed or document.content_type or "application/octet-stream",
            )
        elif isinstance(document, str) and document:
            stored = self._existing_file(document, "document")
        else:
            raise _bad("there is no document in the request")
        content = {
            "document": self._document_dict(stored),
            "caption": caption,
            "caption_entities": entities,
        }
        return self._bot_send(params, content, chat)

    def _send_location(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        location = {
            "latitude": _float_param(params, "latitude"),
            "longitude": _float_param(params, "longitude"),
        }
        return self._bot_send(params, {"location": location}, chat)

    def _send_venue(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        location = {
            "latitude": _float_param(params, "latitude"),
            "longitude": _float_param(params, "longitude"),
        }
        venue = {
            "location": dict(location),
            "title": _str_param(params, "title"),
            "address": _str_param(params, "address"),
        }
        return self._bot_send(params, {"venue": venue, "location": location}, chat)

    def _send_contact(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        contact: JsonDict = {
            "phone_number": _str_param(params, "phone_number"),
            "first_name": _str_param(params, "first_name"),
        }
        if params.get("last_name"):
            contact["last_name"] = str(params["last_name"])
        return self._bot_send(params, {"contact": contact}, chat)

    def _send_chat_action(self, params: JsonDict) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _get_file(self, params: JsonDict) -> JsonDict:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _edit_message_text(self, params: JsonDict) -> JsonDict:
        _, entry = self._editable(params)
        if "text" not in entry.msg:
            raise _bad("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", TEXT_LIMIT)
        if not text:
            raise _bad("message text is empty")
        markup = self._edit_markup(params)
        return self._commit_edit(entry, {"text": text, "entities": entities}, markup)

    def _edit_message_caption(self, params: JsonDict) -> JsonDict:
        _, entry = self._editable(params)
        if not any(kind in entry.msg for kind in ("photo", "document")):
            raise _bad("there is no caption in the message to edit")
        caption, entities = self._formatted(params, "caption", "caption_entities", CAPTION_LIMIT)
        markup = self._edit_markup(params)
        return self._commit_edit(entry, {"caption": caption, "caption_entities": entities}, markup)

    def _edit_message_reply_markup(self, params: JsonDict) -> JsonDict:
        _, entry = self._editable(params)
        return self._commit_edit(entry, {}, self._edit_markup(params))

    def _delete_message(self, params: JsonDict) -> bool:
        chat = self._target_chat(params)
        entry = chat.entry(_int_param(params, "message_id") or 0)
        if entry is None:
            raise _bad("message to delete not found")
        entry.msg["deleted"] = True
        entry.edited = self._next_seq()
        self._notify()
        return True

    def _answer_callback_query(self, params: JsonDict) -> bool:
        callback = self._callbacks.get(str(params.get("callback_query_id") or ""))
        if callback is None or callback.answer is not None:
            raise _bad(QUERY_TOO_OLD)
        answer = {key: value for key, value in params.items() if key != "callback_query_id"}
        answer.setdefault("text", None)
        answer.setdefault("show_alert", False)
        callback.answer = answer
        self._notify()
        return True
