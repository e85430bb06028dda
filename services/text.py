"""Cleaning what people type before it is stored or shown again.

A Telegram client can send any code point that JSON can carry, and some of
them break things later rather than at once: PostgreSQL refuses U+0000 in a
text column (SQLite stores it), a lone surrogate cannot be encoded to UTF-8,
so no message that contains it can ever be sent, and an invisible name (only
zero-width characters) passes a length check. Every free-text answer goes
through :func:`clean` at the step where it is typed, so what one database
accepts the other accepts too, and a refusal comes with a message there.

The rules:

- NFC normalisation (one spelling of "é", so comparisons and lengths agree);
- a lone surrogate or a noncharacter (U+FDD0..U+FDEF, U+xxFFFE/F) is refused:
  it is no text at all, only a broken or forged message carries one;
- control characters (C0, DEL, C1) are refused, except the line breaks and
  tabs, which are whitespace: single-line answers get one space for any run of
  whitespace, multi-line answers keep their line breaks (at most one blank
  line in a row);
- explicit bidirectional embeddings, overrides and isolates (U+202A..U+202E,
  U+2066..U+2069) are dropped: in a card they would reorder the text around
  the answer, not only the answer;
- format characters (zero-width space, joiners, BOM …) and blank look-alike
  letters (Hangul fillers, braille blank) are stripped at the ends; inside,
  the joiners stay (emoji sequences and some scripts need them);
- what is left must have ``min_len`` to ``max_len`` characters.
"""

import re
import unicodedata

from services.errors import InvalidInput

# the keys of this module's refusals (handlers that keep a step open on them)
TEXT_ERRORS = frozenset(
    {"err.text_length", "err.text_control", "err.text_broken", "err.reason_length"}
)
REASON_MAX = 500

_LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# letters and symbols that show as nothing (used for "blank" names)
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _is_invisible(char: str) -> bool:
    return char.isspace() or char in _BLANKS or unicodedata.category(char) == "Cf"


def _refuse_broken(text: str) -> None:
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF or _is_noncharacter(code):
            raise InvalidInput("err.text_broken")
        category = unicodedata.category(char)
        if category == "Cc" and not char.isspace():
            raise InvalidInput("err.text_control")


def _strip_invisible(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_invisible(text[start]):
        start += 1
    while end > start and _is_invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def clean(text: str | None, *, max_len: int, min_len: int = 1, multiline: bool = False) -> str:
    """The answer as it is stored, or ``InvalidInput`` with a key that says why.

    Lengths count characters (code points) after cleaning.
    """
    value = text or ""
    _refuse_broken(value)
    value = unicodedata.normalize("NFC", value)
    value = "".join(c for c in value if c not in _BIDI_CONTROLS)
    if multiline:
        value = re.sub(r"\r\n?", "\n", value)
        lines = re.split(f"[{_LINE_BREAKS}]", value)
        value = "\n".join(_strip_invisible(" ".join(line.split())) for line in lines)
        value = re.sub(r"\n{3,}", "\n\n", value)
    else:
        value = " ".join(value.split())
    value = _strip_invisible(value)
    if not (min_len <= len(value) <= max_len):
        raise InvalidInput("err.text_length", min=min_len, max=max_len)
    return value


def clean_reason(reason: str | None, max_len: int = REASON_MAX) -> str:
    """A typed reason (an admin's rejection, a merchant's refusal), several lines
    allowed, as it is stored and sent."""
    try:
        return clean(reason, max_len=max_len, multiline=True)
    except InvalidInput as error:
        if error.key == "err.text_length":
            raise InvalidInput("err.reason_length", max=max_len) from None
        raise
