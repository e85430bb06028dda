"""The catalogs are gettext catalogs (ui/locales/<lang>/LC_MESSAGES/messages.po), up
to date with the TOML they are converted from, readable by the ecosystem's tools
(Babel, and the stdlib's gettext once compiled), with plural forms that follow each
language's rule."""

import gettext
import io
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from ui.i18n import LANGUAGES, Translator, catalog, plural_forms

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "ui" / "locales"
SCRIPT = ROOT / "scripts" / "i18n_to_gettext.py"


@pytest.mark.skipif(not (LOCALES / "en.toml").exists(), reason="the .po files are the source")
def test_the_po_files_are_up_to_date_with_the_toml() -> None:
    """After a change to ui/locales/*.toml, run scripts/i18n_to_gettext.py."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_po_file_is_a_complete_catalog_with_the_languages_plural_rule(lang: str) -> None:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as file:
        po = read_po(file, locale=lang)
    assert po.num_plurals == {"en": 2, "zh": 1}[lang]
    entries = [m for m in po if m.id]
    assert entries and all(m.context for m in entries)  # each keyed by its context
    untranslated = [m.context for m in entries if not all(m.string or ())]
    assert not untranslated
    assert not [m.context for m in entries if m.fuzzy]
    assert len(entries) == len(catalog(lang))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_stdlib_gettext_reads_the_compiled_catalog(lang: str) -> None:
    """What aiogram's I18n and `pybabel compile` use: a .mo read by gettext."""
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as file:
        po = read_po(file, locale=lang)
    mo = io.BytesIO()
    write_mo(mo, po)
    mo.seek(0)
    translations = gettext.GNUTranslations(mo)
    english = catalog("en")
    assert (
        translations.pgettext("language.saved", english["language.saved"])
        == catalog(lang)["language.saved"]
    )
    forms = plural_forms("en")["ask.more"]
    three = translations.npgettext("ask.more", forms[0], forms[1], 3)
    assert three == plural_forms(lang)["ask.more"][-1]


def test_plurals_follow_the_number() -> None:
    en, zh = Translator("en"), Translator("zh")
    assert en("ask.more", count=1).startswith("1 charger added")
    assert en("ask.more", count=2).startswith("2 chargers added")
    assert en("qr.sent", count=1) == "1 label sent"
    assert en("qr.sent", count=0) == "0 labels sent"
    # the number a text shows decides when it is not called count
    assert "1 booking request waiting" in en("err.too_many_requests", max=1)
    assert "3 booking requests waiting" in en("err.too_many_requests", max=3)
    assert "at most 1 day ahead" in en("err.window_far", days=1)
    # Chinese has one form for every number
    assert zh("ask.more", count=1) == "已添加 1 台充电设备。还要再添加，还是查看店铺信息？"
    assert zh("qr.sent", count=5) == "已发送 5 张标签"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_forms_have_the_same_placeholders(lang: str) -> None:
    from tests.test_i18n import placeholders

    english = plural_forms("en")
    for key, forms in plural_forms(lang).items():
        for form in forms:
            assert placeholders(form) == placeholders(english[key][-1]), (lang, key)
