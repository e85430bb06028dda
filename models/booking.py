from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.enums import BookingStatus
from models.listing import Charger, enum_column


class Booking(Base):
    """A user's request for a charger in a time window, and what became of it.

    The tariff is copied when the booking is requested, so a later price change
    does not change what the user was shown.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        Index("ix_bookings_charger_window", "charger_id", "status", "start_at"),
        Index("ix_bookings_due", "status", "respond_by"),
        Index("ix_bookings_unpaid", "status", "pay_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id"))
    merchant_id: Mapped[int] = mapped_column(index=True)
    status: Mapped[BookingStatus] = mapped_column(enum_column(BookingStatus))
    device_kind: Mapped[str] = mapped_column(String(16))
    device_model: Mapped[str] = mapped_column(String(128), default="")
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    price_minor: Mapped[int]
    price_unit: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    # an estimate for per-hour prices; per-kWh prices depend on the energy used
    estimate_minor: Mapped[int | None]
    # the merchant must answer by then, or the booking expires
    respond_by: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    # prepaid mode: an UNPAID booking expires at pay_by; prepaid_minor is what was
    # held for it when it was paid (None: not prepaid, pay at the shop)
    pay_by: Mapped[datetime | None]
    prepaid_minor: Mapped[int | None]
    # -- walk-up charging (issue #15) --
    # made by Charge now on a scan (starts at once, no window typed)
    walkup: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # "until full": ends when the charger reads full, or at end_at (the cap) at the latest
    until_full: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # reminders sent (services.bookings.remind_due): 1 the merchant nudged, 2 the
    # rider reminded before the window, 3 at its start; each once, in this order
    reminded: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    charger: Mapped[Charger] = relationship(lazy="joined")
