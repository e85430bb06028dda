"""Currencies and amounts: the one table of the currencies we accept, and the
arithmetic every money path shares.

Money is always an integer count of the currency's minor unit (fen, cent; a yen
has none), with the currency's own exponent: 320 CNY minor units are 3.20 CNY,
320 JPY are 320 JPY.

Telegram refuses an invoice whose total is outside the currency's bounds
(``CURRENCY_TOTAL_AMOUNT_INVALID``); they are published in
https://core.telegram.org/bots/payments/currencies.json and follow the exchange
rate (the minimum is about US$1, the maximum about US$10,000). The values in
``TELEGRAM_*`` below are a snapshot of that file as archived by
github.com/MarshalX/telegram-crawler (commit c2ff7bb, the rates of 2021; looked
up 2026-12-02, the live file could not be fetched from here). Because the rates
move, what we invoice is kept inside them with a margin: ``min_invoice_minor``
is a round figure well above the published minimum (US$1.30 to 2 at the rates of
2026; USD, the anchor, at its minimum itself) and ``max_invoice_minor`` about half
the published maximum.
"""

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from services.errors import InvalidInput


@dataclass(frozen=True)
class Currency:
    code: str  # ISO 4217
    exponent: int  # digits of the minor unit
    # Telegram's published bounds (snapshot, see the module's docstring)
    telegram_min_minor: int
    telegram_max_minor: int
    # what we invoice at least and at most (inside Telegram's bounds, with a margin)
    min_invoice_minor: int
    max_invoice_minor: int
    # quick top-up choices, in major units (20, 50, 100 yuan)
    quick_topups: tuple[int, ...]

    @property
    def unit(self) -> int:
        """Minor units in one major unit (100 for CNY, 1 for JPY)."""
        return int(10**self.exponent)

    @property
    def quantum(self) -> Decimal:
        """The smallest amount in major units (0.01 for CNY, 1 for JPY)."""
        return Decimal(1).scaleb(-self.exponent)


def _currency(
    code: str,
    exponent: int,
    telegram: tuple[int, int],
    ours: tuple[int, int],
    quick: tuple[int, ...],
) -> Currency:
    return Currency(code, exponent, *telegram, *ours, quick)


# The currencies a price, a wallet and an invoice may have. The first six are the
# ones listings have always had; JPY (no minor unit) is in to keep every path honest
# about the exponent.
TABLE: dict[str, Currency] = {
    c.code: c
    for c in (
        _currency("CNY", 2, (648, 6_489_198), (1_000, 3_000_000), (20, 50, 100)),
        _currency("HKD", 2, (776, 7_760_905), (1_000, 3_500_000), (20, 50, 100)),
        _currency("USD", 2, (100, 1_000_000), (100, 500_000), (5, 10, 20)),
        _currency("EUR", 2, (82, 828_275), (150, 400_000), (5, 10, 20)),
        _currency("GBP", 2, (72, 720_251), (150, 350_000), (5, 10, 20)),
        _currency("SGD", 2, (132, 1_326_903), (200, 650_000), (5, 10, 20)),
        _currency("JPY", 0, (108, 1_083_590), (200, 500_000), (500, 1_000, 2_000)),
    )
}
CURRENCIES: tuple[str, ...] = tuple(TABLE)


def currency(code: str) -> Currency:
    """The table's row for ``code``; a code we do not accept is a programming error
    here (typed codes are checked where they are typed)."""
    try:
        return TABLE[code]
    except KeyError:
        raise ValueError(f"currency {code!r} is not one we accept ({', '.join(TABLE)})") from None


def format_minor(amount_minor: int, code: str) -> str:
    """Minor units as the currency writes them: 320 CNY → ``"3.20"``, 320 JPY → ``"320"``."""
    exponent = currency(code).exponent
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole}.{part:0{exponent}d}" if exponent else f"{sign}{whole}"


def to_minor(amount: Decimal, code: str) -> int:
    """An exact amount in major units → minor units (no rounding: refuse a fraction
    of the minor unit, which is a caller's mistake)."""
    scaled = amount.scaleb(currency(code).exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more digits than {code} has")
    return int(scaled)


def parse_amount(text: str, code: str) -> int:
    """What a person typed as an amount (``"20"``, ``"20.5"``, ``"20,50"``) → minor
    units. Refused: not a number, not positive, or finer than the minor unit."""
    cleaned = text.strip().replace(",", ".").replace(" ", "")
    if not re.fullmatch(r"[0-9]{1,12}(?:\.[0-9]{1,12})?", cleaned):  # no signs, exponents, NaN
        raise InvalidInput("err.amount", currency=code)
    amount = Decimal(cleaned)
    if amount <= 0 or amount != amount.quantize(currency(code).quantum):
        raise InvalidInput("err.amount", currency=code)
    return to_minor(amount, code)


def percent_of(amount_minor: int, percent: Decimal) -> int:
    """``percent`` of an amount, rounded half up to the minor unit (fees)."""
    share = Decimal(amount_minor) * percent / 100
    return int(share.quantize(Decimal(1), ROUND_HALF_UP))


def topup_choices(due_minor: int, code: str) -> tuple[int, ...]:
    """What a top-up for ``due`` may be: the smallest allowed amount that covers it,
    then the quick choices above that (minor units, ascending)."""
    row = currency(code)
    first = max(due_minor, row.min_invoice_minor)
    quick = (q * row.unit for q in row.quick_topups)
    return (first, *sorted(q for q in quick if q > first))


@dataclass(frozen=True)
class MoneyRules:
    """How money works on this deployment (from the settings; services get it
    through BookingRules / ChargingRules, never by importing bot.settings).

    ``prepaid`` is on when a payment provider is connected (PAYMENT_PROVIDER_TOKEN):
    bookings are paid in Telegram before the merchant is asked. Off, the bot runs
    "pay at the shop": no invoices, and the merchant marks an order paid.
    """

    prepaid: bool = False
    platform_fee_percent: Decimal = Decimal(10)
    no_show_fee_percent: Decimal = Decimal(0)
    # how long an unpaid booking waits for its payment (BOOKING_PAYMENT_MINUTES)
    payment_minutes: int = 10
    # the merchant's answer time once a booking is paid (BOOKING_RESPONSE_MINUTES,
    # as in BookingRules: a prepaid booking asks the merchant only when paid)
    response_minutes: int = 15
    # where refund requests go (the moderation group); None: nobody is told
    admin_chat_id: int | None = None
    # the currency of wallet top-ups asked for without a booking (CURRENCY)
    currency: str = "CNY"


PAY_AT_SHOP = MoneyRules()
