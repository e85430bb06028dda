"""Telegram's HTML ``parse_mode``: visible text plus ``entities``, like tdlib's parser.

Malformed HTML (e.g. an unescaped ``<`` in a user's name) fails with the reasons
Telegram gives after ``Bad Request: can't parse entities:``. Entity offsets and
lengths are in UTF-16 code units.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .protocol import JsonDict


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


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
            out_pos += utf16_len(decoded[0])
            i = decoded[1]
            continue
        if char != "<":
            out.append(char)
            out_pos += utf16_len(char)
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


def trim(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Strip surrounding whitespace like Telegram does, clipping entities to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    new_length = utf16_len(stripped)
    clipped: list[JsonDict] = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(new_length, entity["offset"] + entity["length"] - lead)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped
