"""Persistence: SQLAlchemy 2 typed models, the engine and session factory.

Nothing here imports from bot/, handlers/, services/ or hardware_bridge/.
"""

from models.audit import AuditEntry
from models.base import Base
from models.booking import Booking
from models.card import Card
from models.charging import ChargingSession, EndReason, Order, SessionStatus
from models.enums import BookingStatus, ListingStatus, RevisionStatus
from models.fsm import FsmRecord
from models.handled_update import HandledUpdate
from models.listing import Charger, Listing, ListingRevision
from models.money import (
    AccountKind,
    Invoice,
    InvoicePurpose,
    InvoiceStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    OrderPayment,
    Payment,
    Payout,
    RefundRequest,
    RefundStatus,
)
from models.outbox import OutboxMessage
from models.user import User

__all__ = [
    "AccountKind",
    "AuditEntry",
    "Base",
    "Booking",
    "BookingStatus",
    "Card",
    "Charger",
    "ChargingSession",
    "EndReason",
    "FsmRecord",
    "HandledUpdate",
    "Invoice",
    "InvoicePurpose",
    "InvoiceStatus",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "Listing",
    "ListingRevision",
    "ListingStatus",
    "Order",
    "OrderPayment",
    "OutboxMessage",
    "Payment",
    "Payout",
    "RefundRequest",
    "RefundStatus",
    "RevisionStatus",
    "SessionStatus",
    "User",
]
