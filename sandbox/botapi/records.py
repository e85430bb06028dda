"""The records the server keeps (chats, messages, files, callback queries), and the
readers tests use on the Message dicts it hands out (``plain``, ``buttons``, ...)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from .entities import HtmlParseError, parse_html
from .protocol import JsonDict

# Keys of history records that are bookkeeping of this fake, never sent to the bot.
_INTERNAL_KEYS = frozenset({"deleted", "keyboard"})


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


@dataclass(slots=True)
class Upload:
    """A file part received in a multipart request (logged in ``requests``)."""

    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:
        return f"Upload({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # "photo" or "document"
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    photo: list[JsonDict] | None = None  # the whole PhotoSize array this size belongs to


@dataclass(slots=True)
class Entry:
    """A message of a chat plus the change counters ``wait_for_message`` relies on."""

    msg: JsonDict
    created: int
    edited: int = 0


@dataclass(slots=True)
class Chat:
    info: JsonDict
    entries: list[Entry] = field(default_factory=list)
    keyboard: JsonDict | None = None  # reply keyboard currently shown to the user

    @property
    def id(self) -> int:
        return int(self.info["id"])

    def entry(self, message_id: int) -> Entry | None:
        """The live (not deleted) message with that id."""
        if 1 <= message_id <= len(self.entries):
            entry = self.entries[message_id - 1]
            if not entry.msg.get("deleted"):
                return entry
        return None


@dataclass(slots=True)
class Failure:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None = None


@dataclass(slots=True)
class Callback:
    query: JsonDict
    answer: JsonDict | None = None


def public(msg: Mapping[str, Any]) -> JsonDict:
    """The Telegram ``Message`` object for a history record (without bookkeeping keys)."""
    return {key: copy.deepcopy(value) for key, value in msg.items() if key not in _INTERNAL_KEYS}
