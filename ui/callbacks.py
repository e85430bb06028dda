"""Inline-button payloads. They carry ids only; handlers re-check permissions.

Every field is typed as narrowly as the buttons we make: ids fit the database's
64-bit integers, actions and codes are the values we send. Data that does not
fit (a forged button, an id over 64 bits, an unknown value) then fails to unpack,
so no handler's filter matches it and the fallback answers "this button is out
of date", changing nothing, instead of a handler failing on it.
"""

from typing import Annotated, Literal

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.bookings import REJECT_PRESETS as BOOKING_REJECT_PRESETS
from services.listing_draft import DEVICE_KINDS
from services.listings import REJECT_PRESETS as LISTING_REJECT_PRESETS

# a row id (BigInteger, 0 = none) and small counters (pages, list positions)
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]
Index = Annotated[int, Field(ge=-1, le=10_000)]
Page = Annotated[int, Field(ge=0, le=1_000_000)]

ListingRejectCode = Literal[("", *LISTING_REJECT_PRESETS)]  # type: ignore[valid-type]
BookingRejectCode = Literal[("", *BOOKING_REJECT_PRESETS)]  # type: ignore[valid-type]
DeviceKind = Literal[("", *DEVICE_KINDS)]  # type: ignore[valid-type]


class WizardCb(CallbackData, prefix="wz"):
    action: Literal[
        "submit", "edit", "cancel", "field", "charger", "remove", "add", "back", "resume", "restart"
    ]
    arg: Index = -1


class ReviewCb(CallbackData, prefix="rv"):
    action: Literal["approve", "reject", "reason", "other", "back", "show"]
    revision_id: Id
    code: ListingRejectCode = ""


class ListingCb(CallbackData, prefix="ls"):
    action: Literal["open", "edit", "pause", "resume", "list"]
    listing_id: Id = 0


class LanguageCb(CallbackData, prefix="lang"):
    code: Literal["en", "zh"]


class FindCb(CallbackData, prefix="fd"):
    action: Literal["page", "kind", "card", "map", "restart"]
    page: Page = 0
    kind: DeviceKind = ""  # "" = any device
    open_now: bool = False
    ref: Id = 0  # listing id for card and map


class BookCb(CallbackData, prefix="bk"):
    charger_id: Id


class BookingCb(CallbackData, prefix="bg"):
    action: Literal[
        "confirm", "drop", "accept", "reject", "reason", "other", "back", "cancel", "open"
    ]
    booking_id: Id = 0
    code: BookingRejectCode = ""


class QrCb(CallbackData, prefix="qr"):
    action: Literal["labels", "renew", "renew_yes"]  # listing id | charger id
    ref: Id
    # renew_yes: which token it renews, so a second press (or an old prompt) does not
    # void the label printed after the first
    fp: Annotated[str, Field(pattern=r"^[0-9a-f]{0,16}$")] = ""


class ChargeCb(CallbackData, prefix="ch"):
    action: Literal["start", "status", "stop", "stop_yes", "keep"]  # booking | session id
    ref: Id


class PageCb(CallbackData, prefix="pg"):
    """◀️ / ▶️ of a long list: which list, which page (0-based)."""

    of: Literal["pending", "listings", "mine", "incoming", "sessions"]
    page: Page = 0
