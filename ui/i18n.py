"""Translations: English and Simplified Chinese catalogs in ``ui/locales/*.toml``.

A text is looked up by key and formatted with named parameters. Parameters are
HTML-escaped (the bot sends HTML), except values wrapped in ``Html`` that we
rendered ourselves.
"""

import html
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
_LOCALES = Path(__file__).resolve().parent / "locales"


class Html(str):
    """Text that is already HTML (rendered by us), so it is not escaped again."""

    __slots__ = ()


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@cache
def catalog(language: str) -> dict[str, str]:
    with (_LOCALES / f"{language}.toml").open("rb") as file:
        return _flatten(tomllib.load(file))


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
        self._texts = catalog(self.language)
        self._fallback = catalog(DEFAULT_LANGUAGE)

    def __call__(self, key: str, /, **params: Any) -> str:
        template = self._texts.get(key) or self._fallback.get(key)
        if template is None:
            raise KeyError(f"no text for {key!r}")
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
