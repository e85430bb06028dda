"""Billing rules for charging sessions (groundwork of issue #4)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing import bill, billed_minutes, energy_used

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_minutes_are_started_minutes() -> None:
    assert billed_minutes(T0, T0) == 0
    assert billed_minutes(T0, T0 + timedelta(seconds=1)) == 1
    assert billed_minutes(T0, T0 + timedelta(minutes=59, seconds=59)) == 60
    assert billed_minutes(T0, T0 - timedelta(minutes=5)) == 0  # a clock going back


@pytest.mark.parametrize(
    ("price", "minutes", "expected"),
    [(250, 60, 250), (250, 90, 375), (250, 1, 4), (333, 7, 39), (100, 0, 0)],
)
def test_per_hour_rounds_half_up_to_the_minor_unit(price: int, minutes: int, expected: int) -> None:
    result = bill(price, "hour", T0, T0 + timedelta(minutes=minutes), None, None)
    assert result.cost_minor == expected and result.energy_kwh is None


def test_per_kwh_uses_the_meter_difference() -> None:
    result = bill(150, "kwh", T0, T0 + timedelta(minutes=30), 12.345, 13.428)
    assert result.energy_kwh == Decimal("1.083")
    assert result.cost_minor == 162  # 1.083 kWh × 1.50 = 1.6245 → 1.62


def test_impossible_or_missing_readings_are_not_billed() -> None:
    # a zero placeholder as the first reading must not bill the meter's whole total
    assert energy_used(0.0, 910.0, 5) == (None, True)
    assert energy_used(13.0, 12.0, 30) == (None, True)  # the meter went back
    assert energy_used(None, 12.0, 30) == (None, False)
    result = bill(150, "kwh", T0, T0 + timedelta(minutes=5), 0.0, 910.0)
    assert result.cost_minor == 0 and result.energy_suspect
