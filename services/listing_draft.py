"""A listing as the merchant fills it in: plain data, JSON-friendly, validated.

The same shape is kept in the wizard's FSM data while typing and in
``ListingRevision.data`` once submitted.
"""

import re
import secrets
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from services.errors import InvalidInput
from services.hours import Hours
from services.money import CURRENCIES, format_minor, to_minor
from services.money import currency as money_currency
from services.text import clean

CHARGING_METHODS = ("ac_slow", "dc_fast", "socket", "usb", "other")
DEVICE_KINDS = ("ev_car", "e_bike", "e_scooter", "phone_laptop", "other")
PRICE_UNITS = ("hour", "kwh")
PLUG_DRIVERS = ("tasmota", "shelly")
# a supply device kind picked from the wizard's buttons is stored as "preset:<code>"
# and shown in the reader's language; a kind the merchant typed stays as typed
SUPPLY_KINDS = ("wallbox", "pile", "socket", "cabinet", "usb_hub")
SUPPLY_PRESET = "preset:"
# Before presets were stored as codes, a pressed button stored its label: those
# rows (chargers and submitted versions) are read as the preset they were, so no
# migration rewrites them. Frozen: these are the labels as they were then.
_LEGACY_SUPPLY_LABELS = {
    "wallbox": "wallbox",
    "charging pile": "pile",
    "smart socket": "socket",
    "battery charging cabinet": "cabinet",
    "壁挂式充电桩": "wallbox",
    "落地式充电桩": "pile",
    "智能插座": "socket",
    "电池充电柜": "cabinet",
}


def supply_preset(stored: str | None) -> str | None:
    """The preset code a stored supply kind stands for, or None for a typed one."""
    if not stored:
        return None
    if stored.startswith(SUPPLY_PRESET):
        code = stored.removeprefix(SUPPLY_PRESET)
        return code if code in SUPPLY_KINDS else None
    return _LEGACY_SUPPLY_LABELS.get(stored.strip().casefold())


# CURRENCIES (imported above): those a price may have, also the CURRENCY setting
_CURRENCY_SIGNS = {"¥": "CNY", "￥": "CNY", "元": "CNY", "$": "USD", "€": "EUR", "£": "GBP"}

MAX_CHARGERS = 10  # keeps a summary and a review card within one message
MAX_PRICE = Decimal("100000")


@dataclass
class ChargerDraft:
    id: int | None = None  # set for a charger that already exists
    method: str | None = None
    device_kinds: list[str] = field(default_factory=list)
    device_models: str | None = None
    supply_kind: str | None = None
    supply_model: str | None = None
    hours: Hours | None = None
    price_unit: str | None = None
    price: str | None = None  # decimal as text, e.g. "2.50"
    currency: str | None = None
    # rated power in kW as text, e.g. "7.4": what a per-kWh booking is prepaid on
    # (asked by the wizard; optional for the chargers listed before it asked)
    power_kw: str | None = None
    plug_driver: str | None = None
    plug_id: str | None = None
    # -- pairing (issue #15) --
    # when the bot proved control of the plug (ISO time); reset when the plug changes
    paired_at: str | None = None
    # kept without a paired plug on purpose ("No plug yet", "Pair later"): reviewable,
    # not bookable until paired
    plug_later: bool = False

    def missing(self) -> list[str]:
        return [
            name
            for name in (
                "method",
                "device_models",
                "supply_kind",
                "supply_model",
                "hours",
                "price_unit",
                "price",
                "currency",
                "plug_driver",
                "plug_id",
            )
            if getattr(self, name) is None
        ] + ([] if self.device_kinds else ["device_kinds"])

    @property
    def plug_key(self) -> tuple[str, str] | None:
        """(driver, plug id): what the bridge addresses, so one charger's only."""
        if self.plug_driver is None or not self.plug_id:
            return None
        return self.plug_driver, self.plug_id


@dataclass
class ListingDraft:
    contact_phone: str | None = None
    shop_name: str | None = None
    photo_file_id: str | None = None
    area_m2: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    chargers: list[ChargerDraft] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ListingDraft":
        values = dict(data)
        chargers = [ChargerDraft(**c) for c in values.pop("chargers", [])]
        return cls(**values, chargers=chargers)

    def missing(self) -> list[str]:
        names = ["contact_phone", "shop_name", "photo_file_id", "area_m2", "latitude", "longitude"]
        missing = [n for n in names if getattr(self, n) is None]
        if not self.chargers:
            missing.append("chargers")
        for i, charger in enumerate(self.chargers, start=1):
            missing += [f"charger {i}: {name}" for name in charger.missing()]
        return missing

    def validate_complete(self) -> None:
        """Refuse to submit a draft with a gap (a forged or stale summary)."""
        if self.missing():
            raise DraftIncomplete(self)
        if len(self.chargers) > MAX_CHARGERS:
            raise InvalidInput("err.too_many_chargers", max=MAX_CHARGERS)
        for i, charger in enumerate(self.chargers, start=1):
            if charger.paired_at is None and not charger.plug_later:
                raise InvalidInput("pairing.err_unpaired", n=i)
        twice = self.plug_used_twice()
        if twice is not None:
            first, second = twice
            charger = self.chargers[second]
            raise InvalidInput(
                "err.plug_twice", n=first + 1, other=second + 1, plug=charger.plug_id or ""
            )

    def plug_used_twice(self, index: int | None = None) -> tuple[int, int] | None:
        """The first two chargers (0-based) that name the same plug, if any; with
        ``index``, only a pair that includes that charger."""
        seen: dict[tuple[str, str], int] = {}
        for i, charger in enumerate(self.chargers):
            key = charger.plug_key
            if key is None:
                continue
            if key in seen and index in (None, i, seen[key]):
                return seen[key], i
            seen.setdefault(key, i)
        return None


def parse_phone(text: str) -> str:
    cleaned = re.sub(r"[\s\-().]", "", clean(text, max_len=1000, min_len=0))
    if not re.fullmatch(r"\+?[0-9]{5,17}", cleaned):
        raise InvalidInput("err.phone")
    return cleaned


def parse_text(text: str | None, *, max_len: int, min_len: int = 1) -> str:
    """A single-line free-text answer (shop name, address, models …), cleaned."""
    return clean(text, max_len=max_len, min_len=min_len)


def parse_area(text: str) -> float:
    cleaned = clean(text, max_len=1000, min_len=0).lower()
    for unit in ("m²", "m2", "平方米", "平米"):
        cleaned = cleaned.replace(unit, "")
    cleaned = cleaned.replace(",", ".").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise InvalidInput("err.area") from None
    if not (0 < value <= 100_000):
        raise InvalidInput("err.area")
    return round(value, 1)


def price_example(code: str) -> str:
    """A typical price as the currency writes it (2.50 CNY, 250 JPY), for prompts."""
    return format_minor(250, code)


def parse_price(text: str, default_currency: str) -> tuple[str, str]:
    """``2.5``, ``2.50 CNY``, ``¥2.5`` → (``"2.50"``, currency).

    A sign and a code (or two signs) that name different currencies, e.g.
    ``$3 CNY``, are refused rather than one of them silently winning.
    """
    cleaned = clean(text, max_len=1000, min_len=0).upper().replace(",", ".")
    named: dict[str, str] = {}  # currency → how it was written
    for sign, code in _CURRENCY_SIGNS.items():
        if sign in cleaned:
            cleaned = cleaned.replace(sign, "")
            named.setdefault(code, sign)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Z]{3})?\s*", cleaned)
    if not match:
        raise InvalidInput(
            "err.price", currency=default_currency, example=price_example(default_currency)
        )
    if match.group(2):
        named.setdefault(match.group(2), match.group(2))
    if len(named) > 1:
        raise InvalidInput("err.currency_conflict", written=tuple(named.values()))
    code = next(iter(named), default_currency)
    if code not in CURRENCIES:
        raise InvalidInput("err.currency", currencies=CURRENCIES)
    try:
        amount = Decimal(match.group(1))
    except InvalidOperation:
        raise InvalidInput(
            "err.price", currency=default_currency, example=price_example(default_currency)
        ) from None
    quantum = money_currency(code).quantum  # 0.01, or 1 for a currency without cents
    if amount <= 0 or amount > MAX_PRICE or amount != amount.quantize(quantum):
        # the example follows the currency's exponent: 2.50 CNY, but 250 JPY
        raise InvalidInput("err.price_digits", currency=code, example=price_example(code))
    return str(amount.quantize(quantum)), code


# The broker's ACL (deploy/mosquitto.acl) gives each plug's account, named as the plug,
# the topics under its name: a plug named like one of these prefixes would reach every
# plug's topics (stat/… of all Tasmota plugs, or the bots' chargeshare/… replies), or
# the topics the bot instances relay changes on (chargeshare-relay/…, MQTT_SHARE_GROUP).
RESERVED_PLUG_IDS = frozenset({"cmnd", "stat", "tele", "chargeshare", "chargeshare-relay"})


def parse_plug_id(text: str, driver: str) -> str:
    """A Tasmota topic or a Shelly device id: one MQTT topic level, no wildcards.

    MQTT topics are case-sensitive, and so is a Tasmota topic: it is kept as
    typed (``tasmota_3A1F2C`` and ``tasmota_3a1f2c`` are two plugs). A Shelly
    Gen2 device id (its default topic prefix) is always lower case (model and
    MAC in hex), while apps and labels often print the MAC in upper case, so it
    is lower-cased: typed either way it names the one device.
    """
    error = "err.plug_id_tasmota" if driver == "tasmota" else "err.plug_id_shelly"
    try:
        value = clean(text, max_len=64)
    except InvalidInput:
        raise InvalidInput(error) from None
    if not re.fullmatch(r"[A-Za-z0-9_\-.]{1,64}", value):
        raise InvalidInput(error)
    if value.lower() in RESERVED_PLUG_IDS:
        raise InvalidInput("err.plug_id_reserved", id=value)
    return value.lower() if driver == "shelly" else value


def new_plug_id() -> str:
    """The name the bot gives a plug that is not there yet ("No plug yet"): the merchant
    sets it as the Tasmota topic or the Shelly MQTT prefix. Lower case, so it reads the
    same for both families; random, so it is nobody else's."""
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    return "cs-" + "".join(secrets.choice(alphabet) for _ in range(8))


def parse_coordinates(latitude: float, longitude: float) -> tuple[float, float]:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise InvalidInput("err.location")
    return round(latitude, 6), round(longitude, 6)


def price_minor(price: str, code: str) -> int:
    """A price as parse_price wrote it → minor units of its currency."""
    return to_minor(Decimal(price), code)


MAX_POWER_KW = Decimal(1000)  # the largest DC chargers are a few hundred kW
_POWER_UNITS = {"KW": 1, "千瓦": 1, "W": 1000, "瓦": 1000}


def parse_power(text: str) -> str:
    """A charger's rated power: ``7``, ``7.4 kW``, ``3,5千瓦``, ``2200 W`` → kW as text
    with at most two decimals (``"2.2"``). Refused: not a number, zero, over 1000 kW."""
    cleaned = clean(text, max_len=1000, min_len=0).upper().replace(",", ".").replace(" ", "")
    divisor = 1
    for unit, per_kw in _POWER_UNITS.items():
        if cleaned.endswith(unit):
            cleaned, divisor = cleaned.removesuffix(unit), per_kw
            break
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", cleaned):
        raise InvalidInput("err.power")
    power = (Decimal(cleaned) / divisor).quantize(Decimal("0.01"))
    if power <= 0 or power > MAX_POWER_KW:
        raise InvalidInput("err.power")
    return f"{power.normalize():f}"


class DraftIncomplete(InvalidInput):
    """A draft submitted with a gap; ``draft`` says which (ui names the gaps as the
    wizard's Edit menu does)."""

    def __init__(self, draft: ListingDraft) -> None:
        super().__init__("err.draft_incomplete", fields=tuple(draft.missing()))
        self.draft = draft
