"""Charging sessions (power on → power off) and the orders they end in."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.booking import Booking
from models.listing import enum_column
from models.money import ORDER_PAYMENT_DEFAULT, OrderPayment, money_enum


class SessionStatus(StrEnum):
    # power-on sent, waiting for the device's own confirmation; nothing is billed yet
    STARTING = "starting"
    CHARGING = "charging"
    # power-off asked for: the session ends at stop_requested_at whatever follows
    STOPPING = "stopping"
    COMPLETED = "completed"
    # the device never confirmed the power-on: no order, the booking stays usable
    FAILED = "failed"


ACTIVE_SESSION = (SessionStatus.STARTING, SessionStatus.CHARGING, SessionStatus.STOPPING)
_ACTIVE_SQL = "status IN ('starting', 'charging', 'stopping')"


class EndReason(StrEnum):
    USER = "user"  # Stop button or /stop
    WINDOW_END = "window_end"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_OFF = "device_off"  # the plug reported OFF by itself (button, failsafe, power cut)
    MERCHANT = "merchant"  # closed by the merchant (with or without the device)
    ADMIN = "admin"  # closed by an admin of the platform
    RESTART = "restart"  # found stopping after a restart of the bot
    FULL = "full"  # the power stayed under the charger's threshold: the battery is full


class ChargingSession(Base):
    __tablename__ = "charging_sessions"
    __table_args__ = (
        Index("ix_charging_sessions_status_charger", "status", "charger_id"),
        Index("ix_charging_sessions_plug", "plug_id", "status"),
        # one running session per charger, whatever races past the service's checks
        Index(
            "uq_charging_sessions_active_charger",
            "charger_id",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id"))
    user_id: Mapped[int]
    merchant_id: Mapped[int]
    status: Mapped[SessionStatus] = mapped_column(enum_column(SessionStatus))
    # the plug switched for this session, copied at the start: an edit of the listing
    # approved meanwhile must not make Stop switch another plug
    plug_driver: Mapped[str] = mapped_column(String(16))
    plug_id: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    # server time of the device's confirmation: the clock starts here
    started_at: Mapped[datetime | None]
    # the last time the device was heard from while on (closing time if it drops off)
    last_seen_at: Mapped[datetime | None]
    stop_requested_at: Mapped[datetime | None]
    # when the stop was taken in hand (stop_requested_at can be the window's end, past)
    stopping_since: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # meter totals (kWh); None means "no reading", never a zero placeholder
    start_kwh: Mapped[float | None]
    last_kwh: Mapped[float | None]
    end_reason: Mapped[str | None] = mapped_column(String(16))
    warned_at: Mapped[datetime | None]
    power_off_confirmed: Mapped[bool | None]
    # -- stop when full (issue #15) --
    # the device drew power over the charger's threshold at least once (a device not
    # plugged in yet, drawing nothing, is not "full")
    drew_power: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # since when the power has stayed under the threshold (None: it is over it)
    low_power_since: Mapped[datetime | None]

    booking: Mapped[Booking] = relationship(lazy="joined")


class Order(Base):
    """A finished session, made exactly once (unique session id)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("charging_sessions.id"), unique=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id"))
    user_id: Mapped[int] = mapped_column(index=True)
    merchant_id: Mapped[int] = mapped_column(index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    minutes: Mapped[int]
    energy_kwh: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    energy_suspect: Mapped[bool] = mapped_column(default=False)
    price_minor: Mapped[int]
    price_unit: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    cost_minor: Mapped[int]
    end_reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # settlement (services.settlement): what was prepaid, the platform's fee and the
    # merchant's share of the cost, and how it was paid
    prepaid_minor: Mapped[int | None]
    fee_minor: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    merchant_minor: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    payment: Mapped[OrderPayment] = mapped_column(
        money_enum(OrderPayment, 16),
        default=OrderPayment.PAY_AT_SHOP,
        server_default=ORDER_PAYMENT_DEFAULT,
    )
    settled_at: Mapped[datetime | None]

    charge: Mapped[ChargingSession] = relationship(lazy="joined")
