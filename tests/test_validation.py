"""What merchants type: each parser accepts the usual forms and refuses the rest
with the message key that explains what is expected."""

import pytest

from services.errors import InvalidInput
from services.hours import format_hours, parse_hours
from services.listing_draft import (
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
    for bad in ("0", "free", "1.234", "-1", "5 XYZ"):
        with pytest.raises(InvalidInput):
            parse_price(bad, "CNY")


def test_plug_id_and_text_and_coordinates() -> None:
    assert parse_plug_id(" tasmota_3A1F2C ", "tasmota") == "tasmota_3A1F2C"
    for bad in ("a/b", "plug#1", "with space", ""):
        with pytest.raises(InvalidInput):
            parse_plug_id(bad, "shelly")
    # as an MQTT account (deploy/mosquitto.acl) these would reach every plug's topics
    for reserved in ("stat", "tele", "cmnd", "chargeshare", "Stat"):
        with pytest.raises(InvalidInput) as refused:
            parse_plug_id(reserved, "tasmota")
        assert refused.value.key == "err.plug_id_reserved"
    assert parse_text("  Volt   Café ", max_len=64) == "Volt Café"
    with pytest.raises(InvalidInput):
        parse_text("x" * 65, max_len=64)
    assert parse_coordinates(31.2304001, 121.4737) == (31.2304, 121.4737)
    with pytest.raises(InvalidInput):
        parse_coordinates(91, 0)
