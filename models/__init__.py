"""Persistence: SQLAlchemy 2 typed models, the engine and session factory.

Nothing here imports from bot/, handlers/, services/ or hardware_bridge/.
"""

from models.audit import AuditEntry
from models.base import Base
from models.booking import Booking
from models.enums import BookingStatus, ListingStatus, RevisionStatus
from models.fsm import FsmRecord
from models.listing import Charger, Listing, ListingRevision
from models.outbox import OutboxMessage
from models.user import User

__all__ = [
    "AuditEntry",
    "Base",
    "Booking",
    "BookingStatus",
    "Charger",
    "FsmRecord",
    "Listing",
    "ListingRevision",
    "ListingStatus",
    "OutboxMessage",
    "RevisionStatus",
    "User",
]
