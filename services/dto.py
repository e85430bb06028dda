"""What services hand to handlers and ui: plain, frozen values, never ORM rows.

A row kept past its unit of work is expired by the next rollback and then fails on
every attribute access; a value built inside the read cannot. ui renders these
and imports nothing of models/: the states it shows are re-exported here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import select

from models import (
    Booking,
    BookingStatus,
    Charger,
    ChargingSession,
    EndReason,
    InvoicePurpose,
    InvoiceStatus,
    Listing,
    ListingRevision,
    ListingStatus,
    Order,
    OrderPayment,
    RefundStatus,
    RevisionStatus,
    SessionStatus,
)
from services.billing import Bill
from services.hours import Hours
from services.listing_draft import ListingDraft

__all__ = [
    "BookingInfo",
    "BookingStatus",
    "ChargeInfo",
    "ChargeStatus",
    "ChargerInfo",
    "EndReason",
    "InvoicePurpose",
    "InvoiceStatus",
    "ListingInfo",
    "ListingStatus",
    "OrderInfo",
    "OrderPayment",
    "RefundStatus",
    "RevisionInfo",
    "RevisionStatus",
    "SessionStatus",
    "WalkupOffer",
]


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    id: int
    listing_id: int
    position: int  # 0-based; people count from 1
    method: str
    device_kinds: tuple[str, ...]
    device_models: str
    supply_kind: str
    supply_model: str
    hours: Hours
    price_minor: int
    price_unit: str
    currency: str
    qr_token: str
    power_kw: Decimal | None = None  # rated power (what a per-kWh booking is prepaid on)
    # labels and pairing (issue #15)
    short_code: str = ""
    paired_at: datetime | None = None

    # the columns ``of_row`` reads, in the order of the fields
    COLUMNS: ClassVar[tuple[Any, ...]] = (
        Charger.id,
        Charger.listing_id,
        Charger.position,
        Charger.method,
        Charger.device_kinds,
        Charger.device_models,
        Charger.supply_kind,
        Charger.supply_model,
        Charger.hours,
        Charger.price_minor,
        Charger.price_unit,
        Charger.currency,
        Charger.qr_token,
        Charger.power_kw,
        Charger.short_code,
        Charger.paired_at,
    )

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> "ChargerInfo":
        """From ``select(*COLUMNS)``: no ORM object built (a page of /find)."""
        values = list(row)
        values[4] = tuple(values[4])  # device_kinds
        return cls(*values)

    @classmethod
    def of(cls, row: Charger) -> "ChargerInfo":
        return cls(
            row.id,
            row.listing_id,
            row.position,
            row.method,
            tuple(row.device_kinds),
            row.device_models,
            row.supply_kind,
            row.supply_model,
            row.hours,
            row.price_minor,
            row.price_unit,
            row.currency,
            row.qr_token,
            row.power_kw,
            row.short_code,
            row.paired_at,
        )


@dataclass(frozen=True, slots=True)
class ListingInfo:
    """A listing's public version (what approval published)."""

    id: int
    merchant_id: int
    status: ListingStatus  # of its latest submitted version
    published: bool
    paused: bool
    shop_name: str
    contact_phone: str | None
    address: str | None
    latitude: float | None
    longitude: float | None
    photo_file_id: str | None

    COLUMNS: ClassVar[tuple[Any, ...]] = (
        Listing.id,
        Listing.merchant_id,
        Listing.status,
        Listing.published,
        Listing.paused,
        Listing.shop_name,
        Listing.contact_phone,
        Listing.address,
        Listing.latitude,
        Listing.longitude,
        Listing.photo_file_id,
    )

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> "ListingInfo":
        """From ``select(*COLUMNS)``: no ORM object built (a page of /find)."""
        values = list(row)
        values[5] = values[5] or ""  # shop_name
        return cls(*values)

    @classmethod
    def of(cls, row: Listing) -> "ListingInfo":
        return cls(
            row.id,
            row.merchant_id,
            row.status,
            row.published,
            row.paused,
            row.shop_name or "",
            row.contact_phone,
            row.address,
            row.latitude,
            row.longitude,
            row.photo_file_id,
        )


# a listing's columns beside each of its chargers' (one row per charger), read by
# ``listing_and_charger``: a card, or a page of /find, in one statement
LISTINGS_WITH_CHARGERS = select(*ListingInfo.COLUMNS, *ChargerInfo.COLUMNS).join(
    Charger, Charger.listing_id == Listing.id
)


def listing_and_charger(row: Sequence[Any]) -> tuple[ListingInfo, ChargerInfo]:
    """A row of ``LISTINGS_WITH_CHARGERS``: no ORM object built."""
    width = len(ListingInfo.COLUMNS)
    return ListingInfo.of_row(row[:width]), ChargerInfo.of_row(row[width:])


@dataclass(frozen=True, slots=True)
class BookingInfo:
    id: int
    user_id: int
    merchant_id: int
    status: BookingStatus
    device_kind: str
    device_model: str
    start_at: datetime
    end_at: datetime
    # the tariff as it was when requested
    price_minor: int
    price_unit: str
    currency: str
    estimate_minor: int | None
    respond_by: datetime
    reason: str | None
    charger: ChargerInfo
    shop_name: str
    # prepaid mode: unpaid until pay_by; what the rider prepaid (held until settled)
    pay_by: datetime | None = None
    prepaid_minor: int | None = None
    walkup: bool = False  # made by Charge now on a scan
    until_full: bool = False  # ends when the charger reads full (end_at: the cap)
    # when it was accepted, rejected, expired or cancelled (the last of these)
    decided_at: datetime | None = None
    # a finished booking's real cost (its order's), where it was read
    cost_minor: int | None = None

    @classmethod
    def of(cls, row: Booking, shop_name: str, charger: ChargerInfo | None = None) -> "BookingInfo":
        """``charger``: when the row's own is not loaded (a booking just made)."""
        return cls(
            row.id,
            row.user_id,
            row.merchant_id,
            row.status,
            row.device_kind,
            row.device_model,
            row.start_at,
            row.end_at,
            row.price_minor,
            row.price_unit,
            row.currency,
            row.estimate_minor,
            row.respond_by,
            row.reason,
            charger or ChargerInfo.of(row.charger),
            shop_name,
            row.pay_by,
            row.prepaid_minor,
            bool(row.walkup),
            bool(row.until_full),
            row.decided_at,
        )


@dataclass(frozen=True, slots=True)
class ChargeInfo:
    """A charging session: power on → power off."""

    id: int
    booking: BookingInfo  # its window and tariff; its charger
    user_id: int
    merchant_id: int
    status: SessionStatus
    requested_at: datetime  # Start pressed
    started_at: datetime | None  # the plug's confirmation: the clock starts here

    @classmethod
    def of(cls, row: ChargingSession, shop_name: str) -> "ChargeInfo":
        return cls(
            row.id,
            BookingInfo.of(row.booking, shop_name),
            row.user_id,
            row.merchant_id,
            row.status,
            row.requested_at,
            row.started_at,
        )

    @property
    def open(self) -> bool:
        return self.status not in (SessionStatus.COMPLETED, SessionStatus.FAILED)


@dataclass(frozen=True, slots=True)
class ChargeStatus:
    """A session and what it costs so far (for the status message)."""

    charge: ChargeInfo
    so_far: Bill
    # what the plug draws now (W), when its meter says
    power_w: float | None = None


@dataclass(frozen=True, slots=True)
class OrderInfo:
    """A finished session with its duration, energy and cost."""

    id: int
    session_id: int
    booking_id: int
    user_id: int
    merchant_id: int
    started_at: datetime
    ended_at: datetime
    minutes: int
    energy_kwh: Decimal | None
    energy_suspect: bool
    price_minor: int
    price_unit: str
    currency: str
    cost_minor: int
    end_reason: str
    power_off_confirmed: bool | None
    charger: ChargerInfo
    shop_name: str
    # money (#14): how it is paid, what was prepaid, the platform's and merchant's shares
    payment: OrderPayment = OrderPayment.PAY_AT_SHOP
    prepaid_minor: int | None = None
    fee_minor: int = 0
    merchant_minor: int = 0
    settled_at: datetime | None = None

    @property
    def charger_id(self) -> int:
        return self.charger.id

    @classmethod
    def of(cls, row: Order, charger: Charger, shop_name: str) -> "OrderInfo":
        return cls(
            row.id,
            row.session_id,
            row.booking_id,
            row.user_id,
            row.merchant_id,
            row.started_at,
            row.ended_at,
            row.minutes,
            row.energy_kwh,
            row.energy_suspect,
            row.price_minor,
            row.price_unit,
            row.currency,
            row.cost_minor,
            row.end_reason,
            row.charge.power_off_confirmed,
            ChargerInfo.of(charger),
            shop_name,
            row.payment,
            row.prepaid_minor,
            row.fee_minor,
            row.merchant_minor,
            row.settled_at,
        )


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """One submitted version of a listing and what became of it."""

    id: int
    listing_id: int
    merchant_id: int
    number: int  # 1 for a new listing, more for an edit
    data: dict[str, Any]  # the draft as submitted (ListingDraft.to_dict)
    status: RevisionStatus
    submitted_at: datetime
    decided_at: datetime | None
    decided_by: int | None
    reason: str | None
    # where its review card is, once posted
    card_chat_id: int | None
    card_message_id: int | None
    card_is_photo: bool

    @classmethod
    def of(cls, row: ListingRevision, merchant_id: int | None = None) -> "RevisionInfo":
        """``merchant_id``: when the row's listing is not loaded (a version just made)."""
        return cls(
            row.id,
            row.listing_id,
            row.listing.merchant_id if merchant_id is None else merchant_id,
            row.number,
            dict(row.data),
            row.status,
            row.submitted_at,
            row.decided_at,
            row.decided_by,
            row.reason,
            row.card_chat_id,
            row.card_message_id,
            row.card_is_photo,
        )

    @property
    def draft(self) -> ListingDraft:
        return ListingDraft.from_dict(self.data)

    @property
    def shop_name(self) -> str:
        return str(self.data.get("shop_name") or "")


# -- walk-up charging (issue #15) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalkupOffer:
    """A scanned charger that is free now: Charge now, for how long (minutes; 0 is
    "until full"), each with its end and estimated price."""

    charger: ChargerInfo
    shop_name: str
    free_until: datetime  # the next accepted booking or the closing time (capped)
    choices: tuple[tuple[int, datetime, int | None], ...]  # (minutes, end, estimate)
    auto: bool  # accepted at once; else the merchant is asked
