"""The English and Chinese catalogs agree: same keys, same placeholders, same
markup, button labels that cannot be confused, and hours shortcuts that parse."""

import re
import string
from collections import defaultdict

import pytest

from services.hours import parse_hours
from ui.i18n import LANGUAGES, Html, Translator, catalog

TAGS = ("<b>", "</b>", "<i>", "</i>", "<code>", "</code>")
HOURS_SHORTCUTS = ("hours.shortcut_daily", "hours.shortcut_always", "hours.shortcut_weekdays")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def tag_counts(text: str) -> dict[str, int]:
    return {tag: text.count(tag) for tag in TAGS}


def test_both_languages_have_a_catalog() -> None:
    assert set(LANGUAGES) == {"en", "zh"}
    for lang in LANGUAGES:
        assert catalog(lang), lang


def test_same_keys() -> None:
    en, zh = set(catalog("en")), set(catalog("zh"))
    assert en - zh == set(), "missing in zh.toml"
    assert zh - en == set(), "missing in en.toml"


def test_no_empty_texts() -> None:
    for lang in LANGUAGES:
        empty = [key for key, text in catalog(lang).items() if not text.strip()]
        assert not empty, f"{lang}: {empty}"


@pytest.mark.parametrize("key", sorted(catalog("en")))
def test_same_placeholders(key: str) -> None:
    assert placeholders(catalog("zh")[key]) == placeholders(catalog("en")[key])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_text_formats(lang: str) -> None:
    t = Translator(lang)
    assert t.language == lang
    for key, text in catalog(lang).items():
        params = {name: f"<{name}>" for name in placeholders(text)}
        result = t(key, **params)
        for name in params:
            assert f"&lt;{name}&gt;" in result, (key, name)


@pytest.mark.parametrize("key", sorted(catalog("en")))
def test_same_html_tags(key: str) -> None:
    en, zh = tag_counts(catalog("en")[key]), tag_counts(catalog("zh")[key])
    assert zh == en
    for opening, closing in (("<b>", "</b>"), ("<i>", "</i>"), ("<code>", "</code>")):
        assert en[opening] == en[closing], (key, opening)


def test_button_labels_are_unambiguous() -> None:
    """The code maps a reply-keyboard text back to its key in any language, so a
    label must never stand for two different buttons."""
    meanings: dict[str, set[str]] = defaultdict(set)
    for lang in LANGUAGES:
        for key, text in catalog(lang).items():
            if key.startswith("btn."):
                meanings[text].add(key)
    ambiguous = {label: keys for label, keys in meanings.items() if len(keys) > 1}
    assert not ambiguous


def test_chinese_button_labels_differ_from_english() -> None:
    en = {text for key, text in catalog("en").items() if key.startswith("btn.")}
    zh = {key: text for key, text in catalog("zh").items() if key.startswith("btn.")}
    assert len(set(zh.values())) == len(zh)
    assert {key for key, text in zh.items() if text in en} == set()


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("key", HOURS_SHORTCUTS)
def test_hours_shortcuts_parse(lang: str, key: str) -> None:
    hours = parse_hours(catalog(lang)[key])
    assert hours, (lang, key)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_hours_examples_parse(lang: str) -> None:
    examples = re.findall(r"<code>(.*?)</code>", catalog(lang)["ask.hours"])
    assert examples
    for example in examples:
        assert parse_hours(example), example


def test_shortcuts_mean_the_same_in_both_languages() -> None:
    for key in HOURS_SHORTCUTS:
        assert parse_hours(catalog("zh")[key]) == parse_hours(catalog("en")[key]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_parameters_are_escaped_but_not_html_values(lang: str) -> None:
    t = Translator(lang)
    escaped = t("listings.line", id=1, name="<b>x</b>", status="s")
    assert "&lt;b&gt;x&lt;/b&gt;" in escaped
    assert "<b>" not in escaped
    kept = t("listings.line", id=1, name=Html("<b>x</b>"), status="s")
    assert "<b>x</b>" in kept
    assert "&lt;" not in kept


def test_unknown_language_falls_back_to_english() -> None:
    assert Translator("fr")("language.saved") == catalog("en")["language.saved"]
