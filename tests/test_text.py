"""The one cleaner of typed text (services/text.py): what it keeps, what it
changes and what it refuses, with the key of the message that says why."""

import pytest

from services.errors import InvalidInput
from services.text import clean, clean_reason


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  Volt   Café ", "Volt Café"),
        ("Cafe\u0301 Volt", "Café Volt"),  # NFC: one spelling of é
        ("\u200bVolt Café\u200b\ufeff", "Volt Café"),  # zero-width at the ends
        ("\u3164Volt\u3000Café\u2800", "Volt Café"),  # blank fillers, ideographic space
        ("Volt\tCafé\r\n", "Volt Café"),  # tabs and line breaks are spaces on one line
        ("充电\u200d小站", "充电\u200d小站"),  # a joiner inside stays
        ("👩\u200d🔧 Fix & Charge", "👩\u200d🔧 Fix & Charge"),  # an emoji sequence
        ("\u202eVolt\u202c Café", "Volt Café"),  # bidi overrides would reorder the card
        ("<b>Volt</b>", "<b>Volt</b>"),  # HTML is escaped when shown, not here
    ],
)
def test_single_line_answers_are_cleaned(typed: str, stored: str) -> None:
    assert clean(typed, max_len=64) == stored


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("Volt\x00Café", "err.text_control"),  # PostgreSQL refuses U+0000 in text
        ("Volt\x07", "err.text_control"),
        ("Volt\x9bCafé", "err.text_control"),  # C1
        ("\x7f", "err.text_control"),
        ("Volt\ud800Café", "err.text_broken"),  # a lone surrogate cannot be sent again
        ("Volt\udfff", "err.text_broken"),
        ("Volt\ufdd0", "err.text_broken"),  # noncharacters
        ("Volt\U0010ffff", "err.text_broken"),
        ("\u200b\u200c\u200d\ufeff", "err.text_length"),  # only zero-width characters
        ("\u3164\u3164", "err.text_length"),  # only Hangul fillers
        ("   ", "err.text_length"),
        ("", "err.text_length"),
        (None, "err.text_length"),
        ("x" * 65, "err.text_length"),
    ],
)
def test_refusals_name_the_reason(typed: str | None, key: str) -> None:
    with pytest.raises(InvalidInput) as error:
        clean(typed, max_len=64)
    assert error.value.key == key


def test_length_counts_what_is_stored() -> None:
    assert clean("\u200b" * 10 + "ab", max_len=2) == "ab"
    with pytest.raises(InvalidInput) as error:
        clean("a", max_len=64, min_len=2)
    assert error.value.params == {"min": 2, "max": 64}


def test_multi_line_answers_keep_their_lines() -> None:
    typed = "  First  line \r\nsecond\u2028third\n\n\n\n\u200bfourth\u200b  "
    assert clean(typed, max_len=500, multiline=True) == "First line\nsecond\nthird\n\nfourth"
    with pytest.raises(InvalidInput) as error:
        clean("a\x00b", max_len=500, multiline=True)
    assert error.value.key == "err.text_control"


def test_reasons() -> None:
    assert clean_reason(" Please show\nthe socket ") == "Please show\nthe socket"
    assert clean_reason("preset:photo") == "preset:photo"
    for bad, key in (
        ("\u200b", "err.reason_length"),
        ("x" * 501, "err.reason_length"),
        ("no\x00", "err.text_control"),
        ("no\ud83d", "err.text_broken"),
    ):
        with pytest.raises(InvalidInput) as error:
            clean_reason(bad)
        assert error.value.key == key, bad
