"""Translations: English and Simplified Chinese gettext catalogs,
``ui/locales/<lang>/LC_MESSAGES/messages.po`` (generated from ``ui/locales/*.toml``
by ``scripts/i18n_to_gettext.py`` until those are dropped).

Each entry's context (msgctxt) is the key the code uses, its msgid the English text.
A text is looked up by key and formatted with named parameters; an entry with plural
forms picks its form by the language's Plural-Forms rule from the ``count``
parameter (or the first whole number the text shows). Parameters are HTML-escaped
(the bot sends HTML), except values wrapped in ``Html`` that we rendered ourselves.
"""

import gettext
import html
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from string import Formatter
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
_LOCALES = Path(__file__).resolve().parent / "locales"


class Html(str):
    """Text that is already HTML (rendered by us), so it is not escaped again."""

    __slots__ = ()


class _Catalog:
    """One language's texts by key: a text, or its plural forms and the rule."""

    def __init__(self, language: str) -> None:
        with (_LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
            po = read_po(file, locale=language)
        self.texts: dict[str, str] = {}
        self.plurals: dict[str, tuple[str, ...]] = {}
        self.plural_index: Callable[[int], int] = gettext.c2py(po.plural_expr)
        for message in po:
            key = message.context
            if not key or not message.id:
                continue  # the header
            if message.pluralizable:
                # an untranslated form is the English one (gettext's fallback)
                english = tuple(message.id)
                strings = message.string if isinstance(message.string, tuple | list) else ()
                forms = (
                    tuple(
                        text or english[min(i, len(english) - 1)] for i, text in enumerate(strings)
                    )
                    or english
                )
                self.plurals[key] = forms
                self.texts[key] = forms[-1]
            else:
                self.texts[key] = str(message.string or message.id)


@cache
def _catalog(language: str) -> _Catalog:
    return _Catalog(language)


def catalog(language: str) -> dict[str, str]:
    """Every text of a language by key (of a plural entry, its last form)."""
    return _catalog(language).texts


def plural_forms(language: str) -> dict[str, tuple[str, ...]]:
    return _catalog(language).plurals


def _count(template: str, params: dict[str, Any]) -> int:
    if isinstance(params.get("count"), int):
        return int(params["count"])
    for _, name, _, _ in Formatter().parse(template):
        if name is not None and isinstance(params.get(name), int):
            return int(params[name])
    return 0


def _escape(value: Any) -> Any:
    if isinstance(value, Html):
        return value
    if isinstance(value, str):
        return html.escape(value, quote=False)
    return value


class Translator:
    """``t("key", name=value)`` in one language; falls back to English."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._catalog = _catalog(self.language)
        self._texts = self._catalog.texts
        self._fallback = _catalog(DEFAULT_LANGUAGE)

    def __call__(self, key: str, /, **params: Any) -> str:
        source = self._catalog if key in self._texts else self._fallback
        template = source.texts.get(key)
        if template is None:
            raise KeyError(f"no text for {key!r}")
        forms = source.plurals.get(key)
        if forms:
            index = source.plural_index(_count(template, params))
            template = forms[min(index, len(forms) - 1)]
        return template.format_map({k: _escape(v) for k, v in params.items()})

    def html(self, key: str, /, **params: Any) -> Html:
        return Html(self(key, **params))

    def join(self, items: Iterable[str]) -> str:
        """A list as the language writes it: "a, b" in English, "a、b" in Chinese."""
        return self._texts.get("list.sep", ", ").join(items)

    def currency(self, code: str) -> str:
        """A currency as the reader calls it next to an amount: CNY in English,
        元 in Chinese (so a price reads 元/小时, never CNY/小时)."""
        return self._texts.get(f"currency.{code}") or code

    def __repr__(self) -> str:
        return f"Translator({self.language!r})"


def translator(language: str | None) -> Translator:
    return _translator(language if language in LANGUAGES else DEFAULT_LANGUAGE)


@cache
def _translator(language: str) -> Translator:
    return Translator(language)


# Reply-keyboard labels the catalogs had before the Chinese was rewritten (issue
# #16): a keyboard shown before an update is still on the person's screen after it.
FORMER_LABELS: dict[str, tuple[str, ...]] = {
    "btn.add_charger": ("➕ 添加充电设备",),
    "btn.any_model": ("任意型号",),
    "btn.to_summary": ("✅ 完成，查看出租信息",),
    "unit.kwh": ("按千瓦时",),
}


def all_variants(key: str) -> set[str]:
    """A label in every language, to recognise a reply-keyboard button whatever
    language the person had when it was shown (and what it said before an update)."""
    labels = {catalog(lang)[key] for lang in LANGUAGES if key in catalog(lang)}
    return labels.union(FORMER_LABELS.get(key, ()))


def keys_by_label(keys: Iterable[str]) -> dict[str, str]:
    """Map every language's label of each key back to the key."""
    return {label: key for key in keys for label in all_variants(key)}
