"""What merchants type: each parser accepts the usual forms and refuses the rest
with the message key that explains what is expected."""

import pytest

from bot.settings import SettingsError, load_settings
from services.errors import InvalidInput
from services.hours import format_hours, parse_hours
from services.listing_draft import (
    CURRENCIES,
    parse_area,
    parse_coordinates,
    parse_phone,
    parse_plug_id,
    parse_price,
    parse_text,
)

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("every day 08:00-22:00", "Mon–Sun 08:00–22:00"),
        ("24/7", "Mon–Sun 00:00–24:00"),
        ("Mon-Fri 09:00-18:00; Sat,Sun 10:00-16:00", "Mon–Fri 09:00–18:00; Sat–Sun 10:00–16:00"),
        ("08:00-12:00, 14:00-20:00", "Mon–Sun 08:00–12:00, 14:00–20:00"),
        ("周一至周五 09:00-18:00；周末 10:00-16:00", "Mon–Fri 09:00–18:00; Sat–Sun 10:00–16:00"),
        ("Sat 22:00-02:00", "Mon–Fri closed; Sat 22:00–02:00; Sun closed"),
        ("Fri-Mon 10:00–12:00", "Mon 10:00–12:00; Tue–Thu closed; Fri–Sun 10:00–12:00"),
        ("weekdays 7:30 - 9:00", "Mon–Fri 07:30–09:00; Sat–Sun closed"),
        # past midnight, up to where the next day's window starts: no overlap
        ("Mon 20:00-02:00, Tue 02:00-03:00", "Mon 20:00–02:00; Tue 02:00–03:00; Wed–Sun closed"),
        ("daily 18:00-02:00", "Mon–Sun 18:00–02:00"),
        ("周一 08:00-12:00，周二 09:00-10:00", "Mon 08:00–12:00; Tue 09:00–10:00; Wed–Sun closed"),
    ],
)
def test_hours_accepted(text: str, shown: str) -> None:
    assert format_hours(parse_hours(text), DAYS, "closed") == shown


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("sometimes", "err.hours_format"),
        ("Mon 25:00-26:00", "err.hours_time"),
        ("Mon 10:00-10:00", "err.hours_empty"),
        ("Mon 08:00-12:00, 11:00-13:00", "err.hours_overlap"),
        ("Funday 08:00-12:00", "err.hours_day"),
        ("Mon 08:00-12:00 please", "err.hours_format"),
        # a window past midnight holds the next day's early hours
        ("Mon 20:00-02:00, Tue 01:00-03:00", "err.hours_overlap_night"),
        ("Mon 20:00-02:00; Tue 01:00-03:00", "err.hours_overlap_night"),
        ("Mon 20:00-02:00; Tue 00:00-24:00", "err.hours_overlap_night"),
        ("Sun 23:00-01:00; Mon 00:30-08:00", "err.hours_overlap_night"),  # into Monday
        ("daily 22:00-06:00, 05:00-09:00", "err.hours_overlap_night"),
    ],
)
def test_hours_refused(text: str, key: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_hours(text)
    assert error.value.key == key


def test_phone() -> None:
    assert parse_phone("+86 138-0000-0000") == "+8613800000000"
    assert parse_phone("8613800000000") == "8613800000000"
    for bad in ("call me", "123", "+86 138 0000 0000 0000 0000"):
        with pytest.raises(InvalidInput):
            parse_phone(bad)


def test_area() -> None:
    assert parse_area("45") == 45.0
    assert parse_area("32,5 m²") == 32.5
    assert parse_area("80平米") == 80.0
    for bad in ("0", "-3", "big", "1000000"):
        with pytest.raises(InvalidInput):
            parse_area(bad)


def test_price() -> None:
    assert parse_price("2.5", "CNY") == ("2.50", "CNY")
    assert parse_price("¥3", "USD") == ("3.00", "CNY")
    assert parse_price("3 hkd", "CNY") == ("3.00", "HKD")
    assert parse_price("$3 USD", "CNY") == ("3.00", "USD")  # sign and code agree
    assert parse_price("¥3元", "USD") == ("3.00", "CNY")
    assert parse_price("3 hkd\u200b", "CNY") == ("3.00", "HKD")
    for bad in ("0", "free", "1.234", "-1", "5 XYZ", "3\x00"):
        with pytest.raises(InvalidInput):
            parse_price(bad, "CNY")


@pytest.mark.parametrize(("typed", "written"), [("$3 CNY", ("$", "CNY")), ("€3 $", ("$", "€"))])
def test_a_price_that_names_two_currencies_is_refused(typed: str, written: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_price(typed, "CNY")
    assert error.value.key == "err.currency_conflict"
    assert error.value.params == {"written": written}


def test_plug_id_and_text_and_coordinates() -> None:
    assert parse_plug_id(" tasmota_3A1F2C ", "tasmota") == "tasmota_3A1F2C"
    # MQTT topics are case-sensitive: a Tasmota topic stays as typed; a Shelly id
    # is lower case on the device, whatever case a label prints its MAC in
    assert parse_plug_id("Tasmota_3a1f2c", "tasmota") == "Tasmota_3a1f2c"
    assert parse_plug_id("ShellyPlusPlugS-B8D61A8A1234", "shelly") == "shellyplusplugs-b8d61a8a1234"
    assert parse_plug_id("tasmota_A1\u200b", "tasmota") == "tasmota_A1"  # pasted from a page
    with pytest.raises(InvalidInput) as error:
        parse_plug_id("tasmota\x00", "tasmota")
    assert error.value.key == "err.plug_id_tasmota"
    for bad in ("a/b", "plug#1", "with space", ""):
        with pytest.raises(InvalidInput):
            parse_plug_id(bad, "shelly")
    # as an MQTT account (deploy/mosquitto.acl) these would reach every plug's topics
    # ... or (chargeshare-relay) write the changes bot instances relay to each other
    for reserved in ("stat", "tele", "cmnd", "chargeshare", "Stat", "chargeshare-relay"):
        with pytest.raises(InvalidInput) as refused:
            parse_plug_id(reserved, "tasmota")
        assert refused.value.key == "err.plug_id_reserved"
    assert parse_text("  Volt   Café ", max_len=64) == "Volt Café"
    with pytest.raises(InvalidInput):
        parse_text("x" * 65, max_len=64)
    assert parse_coordinates(31.2304001, 121.4737) == (31.2304, 121.4737)
    with pytest.raises(InvalidInput):
        parse_coordinates(91, 0)


def test_shop_name_of_zero_width_characters_is_refused() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_text("\u200b\u200b\u200b", max_len=64, min_len=2)
    assert error.value.key == "err.text_length"
    assert parse_text("\u200bVolt Café\u200b", max_len=64, min_len=2) == "Volt Café"


def test_the_currency_setting_is_one_a_price_may_have() -> None:
    common = {"bot_token": "1:x", "moderation_chat_id": -1, "_env_file": None}
    assert load_settings(currency="hkd", **common).currency == "HKD"
    for code in CURRENCIES:
        assert load_settings(currency=code, **common).currency == code
    with pytest.raises(SettingsError, match="CURRENCY expected one of CNY, HKD"):
        load_settings(currency="KWD", **common)  # not in services.money's table


def test_the_share_group_is_one_mqtt_topic_level() -> None:
    common = {"bot_token": "1:x", "moderation_chat_id": -1, "_env_file": None}
    assert load_settings(**common).mqtt_share_group is None
    assert load_settings(mqtt_share_group="", **common).mqtt_share_group is None  # `NAME=`
    assert load_settings(mqtt_share_group="chargeshare", **common).mqtt_share_group == (
        "chargeshare"
    )
    for bad in ("a/b", "g+", "#", "with space"):
        with pytest.raises(SettingsError, match="MQTT_SHARE_GROUP"):
            load_settings(mqtt_share_group=bad, **common)
