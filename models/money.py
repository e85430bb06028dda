"""Money: a double-entry ledger, invoices and the payments that pay them,
refund requests and payouts.

Every amount is an integer count of the currency's minor unit. A ledger
transaction's entries sum to zero per currency (checked in services.ledger before
the insert); each account keeps its balance in ``balance_minor``, updated in the
same database transaction as its entries.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


def money_enum(cls: type, length: int = 24) -> Enum:
    # as models.listing.enum_column (VARCHAR + CHECK), with room for longer names
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        create_constraint=True,
        name=cls.__name__.lower(),
    )


class AccountKind(StrEnum):
    """Sign convention: positive is what the platform owes the owner (a wallet, a
    merchant's payable, a user's refund due, a booking's hold) or has earned (fees);
    provider_clearing is the outside money and goes negative as payments come in."""

    USER_WALLET = "user_wallet"
    MERCHANT_PAYABLE = "merchant_payable"
    PLATFORM_FEES = "platform_fees"
    PROVIDER_CLEARING = "provider_clearing"
    BOOKING_HOLD = "booking_hold"
    REFUNDS_DUE = "refunds_due"


# owner_id of the platform-wide accounts (fees, clearing): 0 rather than NULL, so the
# unique (kind, owner_id, currency) also holds for them on PostgreSQL (NULLs differ)
PLATFORM = 0


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("kind", "owner_id", "currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[AccountKind] = mapped_column(money_enum(AccountKind))
    # the user, merchant or booking id; PLATFORM (0) for platform-wide accounts
    owner_id: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(Base):
    """One balanced movement of money, posted once: ``key`` names its cause
    (``payment:<telegram charge id>``, ``hold:booking:<id>``, ``settle:order:<id>``)."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    key: Mapped[str] = mapped_column(String(160), unique=True)
    booking_id: Mapped[int | None] = mapped_column(index=True)
    order_id: Mapped[int | None] = mapped_column(index=True)
    actor_id: Mapped[int | None]
    memo: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_minor: Mapped[int]


class InvoicePurpose(StrEnum):
    BOOKING = "booking"  # pays what a booking still needs
    TOPUP = "topup"  # adds to the wallet (for a booking when booking_id is set)


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    CANCELLED = "cancelled"  # its booking ended, or a newer invoice replaced it
    EXPIRED = "expired"


class Invoice(Base):
    """An invoice sent (or owed) to a user; the Telegram invoice's payload is the
    random ``payload`` here, which is all a payment update points back with."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_open", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    # the order whose cost ran past its prepayment (a shortfall top-up)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    purpose: Mapped[InvoicePurpose] = mapped_column(money_enum(InvoicePurpose, 16))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    payload: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[InvoiceStatus] = mapped_column(money_enum(InvoiceStatus, 16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # the last pre-checkout we approved: the booking waits a little longer for it
    pre_checkout_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    telegram_payment_charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    provider_payment_charge_id: Mapped[str | None] = mapped_column(String(255))
    # the invoice message, for later edits
    chat_id: Mapped[int | None]
    message_id: Mapped[int | None]


class Payment(Base):
    """A successful payment as Telegram reported it, credited exactly once (the
    unique charge id), whatever became of its invoice."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_payment_charge_id: Mapped[str] = mapped_column(String(255), unique=True)
    provider_payment_charge_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # what became of it: booking_paid, topup, booking_gone, short, mismatch, unknown
    outcome: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefundStatus(StrEnum):
    REQUESTED = "requested"
    DONE = "done"
    DECLINED = "declined"


class RefundRequest(Base):
    """A user's wallet balance asked back: held in refunds_due until an admin
    refunds it in the provider's dashboard (DONE) or declines (back to the wallet)."""

    __tablename__ = "refund_requests"
    __table_args__ = (Index("ix_refund_requests_status", "status", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RefundStatus] = mapped_column(money_enum(RefundStatus, 16))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[int | None]
    decided_at: Mapped[datetime | None]
    # the provider's refund id (done) or why it was declined
    reference: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    # the card in the moderation group, for later edits
    card_chat_id: Mapped[int | None]
    card_message_id: Mapped[int | None]


class Payout(Base):
    """Money an admin paid a merchant outside the bot, as recorded in the group."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(index=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(128))
    admin_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the admin's command (chat and message): a repeated delivery records it once
    key: Mapped[str | None] = mapped_column(String(64), unique=True)


class OrderPayment(StrEnum):
    PREPAID = "prepaid"  # settled from the booking's prepayment (and the wallet)
    PAY_AT_SHOP = "pay_at_shop"  # no provider: the user pays the merchant
    PAID_AT_SHOP = "paid_at_shop"  # the merchant marked it paid; the fee is booked


# server-side default of orders.payment for the orders made before payments existed
ORDER_PAYMENT_DEFAULT = text("'pay_at_shop'")
