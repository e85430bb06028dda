"""What a charging session costs, from the tariff copied onto its booking.

Rounding rule (also in the README): time is billed by the started minute —
seconds are rounded up to whole minutes — and the cost is rounded half up to the
currency's minor unit (fen, cent). Energy is the meter's difference between the
session's first and last reading; a missing reading gives no energy figure and a
per-kWh session then costs nothing rather than a guess.
"""

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

# a reading that implies more than this average power is impossible for the
# chargers we list (a DC fast charger is at most a few hundred kW)
MAX_PLAUSIBLE_KW = Decimal(400)


@dataclass(frozen=True)
class Bill:
    minutes: int
    energy_kwh: Decimal | None
    cost_minor: int
    energy_suspect: bool  # a reading was impossible and was left out


def billed_minutes(started_at: datetime, ended_at: datetime) -> int:
    seconds = max(0.0, (ended_at - started_at).total_seconds())
    return math.ceil(seconds / 60)


def energy_used(
    start_kwh: float | None, end_kwh: float | None, minutes: int
) -> tuple[Decimal | None, bool]:
    """Meter difference, or None when it cannot be trusted (and whether it was suspect)."""
    if start_kwh is None or end_kwh is None:
        return None, False
    used = Decimal(str(end_kwh)) - Decimal(str(start_kwh))
    limit = MAX_PLAUSIBLE_KW * Decimal(max(minutes, 1)) / 60
    if used < 0 or used > limit:  # a meter reset, a swapped plug, a glitch
        return None, True
    return used.quantize(Decimal("0.001")), False


def bill(
    price_minor: int,
    unit: str,
    started_at: datetime,
    ended_at: datetime,
    start_kwh: float | None,
    end_kwh: float | None,
) -> Bill:
    minutes = billed_minutes(started_at, ended_at)
    energy, suspect = energy_used(start_kwh, end_kwh, minutes)
    if unit == "hour":
        cost = Decimal(price_minor) * minutes / 60
    elif unit == "kwh":
        cost = Decimal(price_minor) * (energy or 0)
    else:
        raise ValueError(f"unknown price unit {unit!r}")
    return Bill(minutes, energy, int(cost.quantize(Decimal(1), ROUND_HALF_UP)), suspect)
