import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    Float,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.enums import ListingStatus, RevisionStatus


def enum_column(cls: type) -> Enum:
    # VARCHAR + CHECK instead of a native PostgreSQL enum: adding a state later
    # is then a plain migration on both databases.
    return Enum(
        cls,
        native_enum=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        create_constraint=True,
        name=cls.__name__.lower(),
    )


class Listing(Base):
    """A merchant's shop. Its columns and chargers are the *public* version;

    what the merchant submitted lives in ``ListingRevision`` until approved, so
    an approved listing stays visible while an edit of it is under review.
    """

    __tablename__ = "listings"
    __table_args__ = (Index("ix_listings_lat_lon", "latitude", "longitude"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[ListingStatus] = mapped_column(enum_column(ListingStatus))
    published: Mapped[bool] = mapped_column(default=False)
    paused: Mapped[bool] = mapped_column(default=False)
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    shop_name: Mapped[str | None] = mapped_column(String(128))
    photo_file_id: Mapped[str | None] = mapped_column(String(256))
    area_m2: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]

    chargers: Mapped[list["Charger"]] = relationship(
        back_populates="listing", order_by="Charger.position", lazy="selectin"
    )


# A label's short code, typed when a camera cannot scan: no 0/O/1/I, which read alike
# (32 symbols, 6 of them: about a billion codes; it opens no more than the QR does).
SHORT_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
SHORT_CODE_LENGTH = 6


def new_short_code() -> str:
    return "".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(SHORT_CODE_LENGTH))


# a plug switches one charger's power: two active chargers on one (driver, plug
# id) would switch each other off (services.listings checks it first; this is
# the last guard, also against two approvals racing)
ACTIVE_PLUG_INDEX = "uq_chargers_active_plug"


class Charger(Base):
    """One supply device with its own QR token and smart plug."""

    __tablename__ = "chargers"
    __table_args__ = (
        Index(
            ACTIVE_PLUG_INDEX,
            "plug_driver",
            "plug_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    # removed from the listing; kept so bookings and orders keep their charger
    active: Mapped[bool] = mapped_column(default=True)
    method: Mapped[str] = mapped_column(String(16))
    device_kinds: Mapped[list[str]] = mapped_column(JSON)
    device_models: Mapped[str] = mapped_column(String(256), default="")
    supply_kind: Mapped[str] = mapped_column(String(64))
    supply_model: Mapped[str] = mapped_column(String(64))
    hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    price_minor: Mapped[int]
    price_unit: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    # rated power (kW): what a per-kWh booking is prepaid on (power × hours × price)
    power_kw: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    plug_driver: Mapped[str] = mapped_column(String(16))
    plug_id: Mapped[str] = mapped_column(String(64))
    qr_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # -- labels and pairing (issue #15) --
    # printed under the QR code; renewed with the token (services.listings.renew_token)
    short_code: Mapped[str] = mapped_column(
        String(SHORT_CODE_LENGTH), unique=True, default=new_short_code
    )
    # when the bot proved it controls the plug (switched it and heard the device
    # answer); None: no plug yet or not proven, and the charger is not bookable
    paired_at: Mapped[datetime | None]
    # -- walk-up charging and "stop when full" (issue #15) --
    # a walk-up (Charge now on a scan) is accepted at once; off: the merchant is asked
    walkup_auto: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # the session ends as "full" once the power stays under full_below_w for full_minutes
    full_below_w: Mapped[int] = mapped_column(default=10, server_default=text("10"))
    full_minutes: Mapped[int] = mapped_column(default=3, server_default=text("3"))
    # its plug has reported a power reading: "until full" can be offered
    meters_power: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    listing: Mapped[Listing] = relationship(back_populates="chargers")


class ListingRevision(Base):
    """One submitted version of a listing, as the admins review it."""

    __tablename__ = "listing_revisions"
    __table_args__ = (UniqueConstraint("listing_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    number: Mapped[int]
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[RevisionStatus] = mapped_column(enum_column(RevisionStatus), index=True)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)
    # where the review card was posted, so a decision can update it
    card_chat_id: Mapped[int | None]
    card_message_id: Mapped[int | None]
    card_is_photo: Mapped[bool] = mapped_column(default=True)
    # the wizard's key for one summary: a Submit repeated after a crash finds
    # the revision it made instead of making another
    submission_key: Mapped[str | None] = mapped_column(String(32), unique=True)

    listing: Mapped[Listing] = relationship(lazy="joined")
