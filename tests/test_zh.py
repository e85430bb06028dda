"""Natural Chinese (issue #16): the zh catalog and what is rendered from it leak no
English (weekday names, "CNY/"), use the glossary's words (docs/glossary-zh.md) and
full-width punctuation; presets are shown in the reader's language; Chinese times
and places are understood."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.clock_words import clock_ranges
from services.dto import ChargerInfo, ListingInfo, ListingStatus
from services.errors import InvalidInput
from services.hours import parse_hours
from services.listing_draft import SUPPLY_PRESET, supply_preset
from services.search import Hit, search_terms
from services.windows import parse_window
from tests import factories
from ui.errors import refusal
from ui.i18n import FORMER_LABELS, Translator, all_variants, catalog, keys_by_label
from ui.views.booking import hit_line, listing_card, money, tariff_text
from ui.views.listing import hours_text, listing_text, supply_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
EN_DAYS = re.compile(
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:day|sday|nesday|rsday|urday)?\b|\b(?:today|tomorrow)\b"
)
# words the glossary rules out: they read as renting, a system error or a review
BANNED = ("出租", "租赁", "车主", "不通过", "预约失败", "失败理由", "没有预料到", "CNY/", "你")
CJK = r"[\u3400-\u9fff]"
# ASCII punctuation touching a Chinese character (outside <code>, where people type)
HALF_WIDTH = re.compile(rf"{CJK}[,;:?!()]|[,;:?!()]{CJK}|{CJK}\.(?!\.)")


def zh_texts() -> dict[str, str]:
    return catalog("zh")


def prose(text: str) -> str:
    """The text people read, without what they type (``<code>`` examples)."""
    return re.sub(r"<code>.*?</code>", "", text, flags=re.S)


# -- the catalog --------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(catalog("zh")))
def test_zh_catalog_has_no_english_weekday_or_currency_code(key: str) -> None:
    text = zh_texts()[key]
    assert not EN_DAYS.search(text), (key, text)
    for word in BANNED:
        assert word not in text, (key, word)


@pytest.mark.parametrize("key", sorted(catalog("zh")))
def test_zh_catalog_uses_full_width_punctuation(key: str) -> None:
    text = prose(zh_texts()[key])
    assert not HALF_WIDTH.search(text), (key, HALF_WIDTH.search(text))


def test_zh_day_names_and_currencies() -> None:
    zh = zh_texts()
    assert [zh[f"day.{d}"] for d in range(7)] == [
        "周一",
        "周二",
        "周三",
        "周四",
        "周五",
        "周六",
        "周日",
    ]
    assert zh["currency.CNY"] == "元"
    assert zh["list.sep"] == "、"


# -- what is rendered ---------------------------------------------------------


def charger_info(**changes: object) -> ChargerInfo:
    values: dict[str, object] = {
        "id": 1,
        "listing_id": 1,
        "position": 0,
        "method": "socket",
        "device_kinds": ("e_bike", "e_scooter"),
        "device_models": "",
        "supply_kind": "智能插座",  # stored as a button's label before presets were codes
        "supply_model": "Sonoff S31",
        # Wednesday only, from 07:00
        "hours": {"2": [["07:00", "20:00"]]},
        "price_minor": 250,
        "price_unit": "hour",
        "currency": "CNY",
        "qr_token": "t",
    }
    values.update(changes)
    return ChargerInfo(**values)  # type: ignore[arg-type]


LISTING = ListingInfo(
    1,
    2001,
    ListingStatus.APPROVED,
    True,
    False,
    "Volt Café",
    "+8613800000000",
    "南京西路 120 号 · 120 Nanjing West Rd",
    31.23,
    121.47,
    None,
)


def hit(charger: ChargerInfo) -> Hit:
    return Hit(listing=LISTING, chargers=[charger], distance_km=0.4)


MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)
WEDNESDAY_EARLY = datetime(2026, 12, 2, 5, 0, tzinfo=SHANGHAI)
TUESDAY_NIGHT = datetime(2026, 12, 1, 22, 0, tzinfo=SHANGHAI)


def rendered(lang: str) -> list[str]:
    """Samples of every kind of text that carries days, prices, lists and presets."""
    t = Translator(lang)
    charger = charger_info()
    draft = factories.listing(chargers=1)
    draft.chargers[0].hours = parse_hours("Mon-Fri 08:00-12:00, 14:00-20:00; Sat 10:00-16:00")
    draft.chargers[0].device_kinds = ["e_bike", "phone_laptop"]
    return [
        hit_line(t, 1, hit(charger), SHANGHAI, MONDAY_NOON),
        hit_line(t, 1, hit(charger), SHANGHAI, WEDNESDAY_EARLY),
        hit_line(t, 1, hit(charger), SHANGHAI, TUESDAY_NIGHT),
        listing_card(t, LISTING, [charger, charger_info(price_unit="kwh", supply_kind="Wallbox")]),
        listing_text(t, draft),
        money(t, 320, "CNY"),
        tariff_text(t, 180, "kwh", "CNY"),
        hours_text(t, {str(d): [["00:00", "24:00"]] for d in range(7)}),
    ]


def test_rendered_chinese_has_no_english() -> None:
    texts = rendered("zh")
    for text in texts:
        assert not EN_DAYS.search(text), text
        assert "CNY" not in text and "出租" not in text, text
        assert "Smart socket" not in text and "Wallbox" not in text, text
    line_monday, line_wednesday, line_tuesday, card, listing, cost, per_kwh, always = texts
    assert "未开放，周三 07:00 起可用" in line_monday
    assert "今天 07:00" in line_wednesday
    assert "明天 07:00" in line_tuesday
    assert "2.50 元/小时" in line_monday and "电动自行车、电动滑板车" in line_monday
    assert "供电设备：智能插座 / Sonoff S31" in card
    assert "供电设备：壁挂式充电桩 / Sonoff S31" in card and "2.50 元/度" in card
    assert "周三 07:00–20:00；" in card and "周一至周二 不开放" in card
    assert "周一至周五 08:00–12:00、14:00–20:00；周六 10:00–16:00；周日 不开放" in listing
    assert "电动自行车、手机 / 笔记本电脑" in listing
    assert cost == "3.20 元"
    assert per_kwh == "1.80 元/度"
    assert always == "每天 00:00–24:00"


def test_rendered_english_is_as_before_and_has_no_chinese_presets() -> None:
    line_monday, line_wednesday, line_tuesday, card, listing, cost, *_ = rendered("en")
    assert "closed, opens Wed 07:00" in line_monday
    assert "opens today 07:00" in line_wednesday and "opens tomorrow 07:00" in line_tuesday
    assert "2.50 CNY/hour" in line_monday and "E-bike, E-scooter" in line_monday
    assert "Supply device: Smart socket / Sonoff S31" in card
    assert "智能插座" not in card
    assert "Mon–Fri 08:00–12:00, 14:00–20:00; Sat 10:00–16:00; Sun closed" in listing
    assert cost == "3.20 CNY"


def test_a_refusal_lists_as_the_language_does() -> None:
    """A list in a refusal (two currencies typed) is joined with 、 in Chinese."""
    error = InvalidInput("err.currency_conflict", written=("$", "CNY"))
    zh = refusal(Translator("zh"), error, SHANGHAI, NOW).text
    en = refusal(Translator("en"), error, SHANGHAI, NOW).text
    assert "（$、CNY）" in zh and "($, CNY)" in en
    price = InvalidInput("err.price", currency="CNY", example="2.50")  # next to words: 元
    assert "单位为元" in refusal(Translator("zh"), price, SHANGHAI, NOW).text
    assert "currency CNY" in refusal(Translator("en"), price, SHANGHAI, NOW).text
    unknown = InvalidInput("err.currency", currencies=("CNY", "HKD"))
    assert "CNY、HKD" in refusal(Translator("zh"), unknown, SHANGHAI, NOW).text


def test_a_keyboard_shown_before_the_rewrite_still_works() -> None:
    assert "任意型号" in all_variants("btn.any_model")
    assert keys_by_label(["unit.hour", "unit.kwh"])["按千瓦时"] == "unit.kwh"
    former = {label for labels in FORMER_LABELS.values() for label in labels}
    current = {text for lang in ("en", "zh") for text in catalog(lang).values()}
    assert not former & current


# -- presets stored as keys ---------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "code"),
    [
        (SUPPLY_PRESET + "socket", "socket"),
        (SUPPLY_PRESET + "usb_hub", "usb_hub"),
        ("智能插座", "socket"),  # rows stored before presets were codes
        ("Smart socket", "socket"),
        ("壁挂式充电桩 ", "wallbox"),
        ("battery charging cabinet", "cabinet"),
        ("Charging pile", "pile"),
        ("公牛 7kW 交流桩", None),  # the merchant's own words
        (SUPPLY_PRESET + "nonsense", None),
        ("", None),
    ],
)
def test_supply_preset(stored: str, code: str | None) -> None:
    assert supply_preset(stored) == code


def test_a_preset_is_shown_in_the_readers_language_and_typed_words_as_typed() -> None:
    en, zh = Translator("en"), Translator("zh")
    for stored in (SUPPLY_PRESET + "socket", "智能插座", "Smart socket"):
        assert supply_text(en, stored, "Nous A1T") == "Smart socket / Nous A1T"
        assert supply_text(zh, stored, "Nous A1T") == "智能插座 / Nous A1T"
    assert supply_text(en, "公牛交流桩", None) == "公牛交流桩 / —"
    assert supply_text(zh, None, None) == "— / —"


# -- Chinese times ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8点到10点", "08:00-10:00"),
        ("晚上8点到10点", "20:00-22:00"),
        ("上午9点-11点", "09:00-11:00"),
        ("上午11点到1点", "11:00-13:00"),
        ("下午3点半~5点", "15:30-17:00"),
        ("八点一刻到九点三刻", "08:15-09:45"),
        ("9点05分到10点", "09:05-10:00"),
        ("十点到十二点", "10:00-12:00"),
        ("晚上10点到12点", "22:00-24:00"),
        ("凌晨1点到3点", "01:00-03:00"),
        ("中午12点到下午2点", "12:00-14:00"),
        ("8pm-10pm", "20:00-22:00"),
        ("8-10pm", "20:00-22:00"),
        ("周一到周五 9:00-21:00，周末 10:00-18:00", "周一到周五 09:00-21:00，周末 10:00-18:00"),
        # what is not a time stays as typed
        ("2026-12-01 22:00-01:00", "2026-12-01 22:00-01:00"),
        ("12-01", "12-01"),
        ("十十点到一点", "十十点到一点"),
    ],
)
def test_clock_ranges(text: str, expected: str) -> None:
    assert clock_ranges(text) == expected


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


NOW = at(2, 9)  # Wednesday 2 December 2026, 09:00 in Shanghai


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("今晚8点到10点", at(2, 20), at(2, 22)),
        ("今天晚上8点到10点", at(2, 20), at(2, 22)),
        ("明天上午9点-11点", at(3, 9), at(3, 11)),
        ("明晚7点半到9点", at(3, 19, 30), at(3, 21)),
        ("后天下午2点到4点", at(4, 14), at(4, 16)),
        ("周六 10:00-12:00", at(5, 10), at(5, 12)),
        ("星期三晚上7点-9点", at(2, 19), at(2, 21)),
        ("12月25日 9点到11点", at(25, 9), at(25, 11)),
        ("12月3号 9:00-11:00", at(3, 9), at(3, 11)),
        ("晚上10点到12点", at(2, 22), at(3, 0)),
        ("明天 22:00-01:00", at(3, 22), at(4, 1)),
        ("２０：００～２２：００", at(2, 20), at(2, 22)),  # full-width, as Chinese keyboards type
        ("tonight 8-10pm", at(2, 20), at(2, 22)),
        # the forms that were read before still are
        ("18:00-20:00", at(2, 18), at(2, 20)),
        ("tomorrow 09:00-11:00", at(3, 9), at(3, 11)),
        ("明天 09:00-11:00", at(3, 9), at(3, 11)),
    ],
)
def test_parse_window_in_chinese(text: str, start: datetime, end: datetime) -> None:
    assert parse_window(text, NOW, SHANGHAI) == (start, end)


@pytest.mark.parametrize(
    "text", ["今晚", "明天上午", "2月30日 9点到11点", "周八 9点到11点", "随便"]
)
def test_parse_window_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_window(text, NOW, SHANGHAI)
    assert refused.value.key == "err.window_format"


WEEKDAYS_9_21 = {str(d): [["09:00", "21:00"]] for d in range(5)}
WEEKEND_10_18 = {"5": [["10:00", "18:00"]], "6": [["10:00", "18:00"]]}


@pytest.mark.parametrize(
    "text",
    [
        "周一到周五 9:00-21:00，周末 10:00-18:00",
        "周一至周五 9点到21点；周六、周日 10点-18点",
        "工作日 早上9点到晚上9点\n周末 上午10点到下午6点",
        "星期一到星期五 上午9点至晚上9点，周末 10:00-18:00",
    ],
)
def test_hours_in_natural_chinese(text: str) -> None:
    assert parse_hours(text) == WEEKDAYS_9_21 | WEEKEND_10_18


# -- places -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("南京西路", [("南京西路",)]),
        ("上海市黄浦区南京西路120号", [("南京西路",), ("120",), ("号",)]),
        ("人民广场", [("人民广场",)]),
        ("Nanjing West Road 120", [("nanjing",), ("west",), ("rd", "road"), ("120",)]),
        ("ＮＡＮＪＩＮＧ", [("nanjing",)]),  # full-width letters
        ("No. 18", [("18",)]),
        ("%%", []),
    ],
)
def test_search_terms(text: str, terms: list[tuple[str, ...]]) -> None:
    assert search_terms(text) == terms
