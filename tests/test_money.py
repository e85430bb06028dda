"""Currencies and amounts (services/money.py), the exponent in listing prices
(services/listing_draft.py), rated power, and the payment settings."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings
from services.errors import InvalidInput
from services.listing_draft import parse_power, parse_price, price_minor
from services.money import (
    CURRENCIES,
    TABLE,
    currency,
    format_minor,
    parse_amount,
    percent_of,
    to_minor,
    topup_choices,
)
from ui.i18n import translator

COMMON = {"bot_token": "1:x", "moderation_chat_id": -1, "_env_file": None}


@pytest.mark.parametrize("code", CURRENCIES)
def test_what_we_invoice_stays_inside_telegrams_bounds(code: str) -> None:
    row = TABLE[code]
    assert row.code == code and len(code) == 3
    # a margin over the published minimum: the rates move (about US$1)
    assert row.min_invoice_minor >= row.telegram_min_minor
    assert row.max_invoice_minor <= row.telegram_max_minor // 2 + row.unit
    assert row.min_invoice_minor < row.max_invoice_minor
    # every quick choice is a valid invoice
    for quick in row.quick_topups:
        assert row.min_invoice_minor <= quick * row.unit <= row.max_invoice_minor


def test_the_exponent_of_each_currency() -> None:
    assert (currency("CNY").exponent, currency("JPY").exponent) == (2, 0)
    assert (currency("CNY").quantum, currency("JPY").quantum) == (Decimal("0.01"), Decimal(1))
    with pytest.raises(ValueError, match="KWD"):
        currency("KWD")


def test_format_minor() -> None:
    assert format_minor(320, "CNY") == "3.20"
    assert format_minor(5, "USD") == "0.05"
    assert format_minor(-450, "CNY") == "-4.50"
    assert format_minor(320, "JPY") == "320"
    assert format_minor(0, "EUR") == "0.00"


def test_parse_amount_uses_the_exponent() -> None:
    assert parse_amount("20", "CNY") == 2000
    assert parse_amount(" 20,5 ", "CNY") == 2050
    assert parse_amount("20.50", "HKD") == 2050
    assert parse_amount("500", "JPY") == 500
    for bad, code in (("0", "CNY"), ("-3", "CNY"), ("1.234", "CNY"), ("2.5", "JPY"), ("x", "CNY")):
        with pytest.raises(InvalidInput) as refused:
            parse_amount(bad, code)
        assert refused.value.key == "err.amount"
        assert refused.value.params == {"currency": code}
    for odd in ("NaN", "Infinity", "1e3", "+5", "5.", "１０"):
        with pytest.raises(InvalidInput):
            parse_amount(odd, "CNY")
    assert to_minor(Decimal("3.2"), "CNY") == 320
    with pytest.raises(ValueError):
        to_minor(Decimal("3.205"), "CNY")


def test_fees_round_half_up_to_the_minor_unit() -> None:
    assert percent_of(450, Decimal(10)) == 45
    assert percent_of(45, Decimal(10)) == 5  # 4.5 → 5
    assert percent_of(44, Decimal("12.5")) == 6  # 5.5 → 6
    assert percent_of(44, Decimal(0)) == 0
    assert percent_of(1200, Decimal(100)) == 1200


def test_top_up_choices_cover_what_is_due() -> None:
    assert topup_choices(320, "CNY") == (1000, 2000, 5000, 10000)
    assert topup_choices(2500, "CNY") == (2500, 5000, 10000)
    assert topup_choices(50, "JPY") == (200, 500, 1000, 2000)


def test_prices_follow_the_currencys_exponent() -> None:
    assert parse_price("250 JPY", "CNY") == ("250", "JPY")
    assert price_minor("250", "JPY") == 250
    assert price_minor("2.50", "CNY") == 250
    with pytest.raises(InvalidInput):
        parse_price("2.5 JPY", "CNY")  # a yen has no cents


def test_rated_power() -> None:
    assert parse_power("7") == "7"
    assert parse_power("7.4 kW") == "7.4"
    assert parse_power("3,5千瓦") == "3.5"
    assert parse_power("2200 W") == "2.2"
    assert parse_power("1000kw") == "1000"
    for bad in ("0", "fast", "-3", "2000 kW", "7 kWh"):
        with pytest.raises(InvalidInput) as refused:
            parse_power(bad)
        assert refused.value.key == "err.power"


def test_payment_settings() -> None:
    plain = load_settings(**COMMON)
    assert plain.payment_provider_token is None
    assert plain.money_rules.prepaid is False  # pay at the shop, as before
    assert plain.money_rules.platform_fee_percent == Decimal(10)
    assert plain.money_rules.no_show_fee_percent == Decimal(0)
    assert plain.money_rules.payment_minutes == 10
    assert load_settings(payment_provider_token="", **COMMON).money_rules.prepaid is False
    paid = load_settings(
        payment_provider_token="284685063:TEST:abc",
        platform_fee_percent="12.5",
        no_show_fee_percent="20",
        booking_payment_minutes=5,
        booking_response_minutes=20,
        currency="jpy",
        **COMMON,
    )
    rules = paid.money_rules
    assert (rules.prepaid, rules.platform_fee_percent, rules.no_show_fee_percent) == (
        True,
        Decimal("12.5"),
        Decimal(20),
    )
    assert (rules.payment_minutes, rules.response_minutes, rules.currency) == (5, 20, "JPY")
    assert rules.admin_chat_id == -1
    assert "TEST" not in repr(paid)  # a secret
    for name, value in (
        ("platform_fee_percent", "101"),
        ("platform_fee_percent", "-1"),
        ("platform_fee_percent", "1.234"),
        ("no_show_fee_percent", "150"),
        ("booking_payment_minutes", "0"),
    ):
        with pytest.raises(SettingsError, match=name.upper()):
            load_settings(**{name: value}, **COMMON)


def test_every_setting_is_in_env_example_and_the_readme() -> None:
    root = Path(__file__).resolve().parent.parent
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    for name in Settings.model_fields:
        assert re.search(rf"^{name.upper()}=", example, re.M), f"{name.upper()} in .env.example"
        assert f"`{name.upper()}`" in readme, f"{name.upper()} in the README's table"
    # .env.example as it is: pay at the shop
    assert load_settings(_env_file=root / ".env.example").money_rules.prepaid is False


def test_a_price_error_shows_an_example_in_the_currencys_own_digits() -> None:
    """err.price said "at most two decimals, e.g. 2.50" also for a yen price."""
    with pytest.raises(InvalidInput) as caught:
        parse_price("2.5 JPY", "CNY")
    assert caught.value.key == "err.price_digits"
    assert caught.value.params == {"currency": "JPY", "example": "250"}
    text = translator("en")(caught.value.key, **caught.value.params)
    assert "250 JPY" in text and "2.50" not in text
    with pytest.raises(InvalidInput) as caught:
        parse_price("free", "CNY")
    assert "2.50" in translator("en")(caught.value.key, **caught.value.params)
