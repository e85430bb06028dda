"""States of the lifecycle in ARCHITECTURE.md, stored as short strings."""

from enum import StrEnum


class ListingStatus(StrEnum):
    """Review state of a listing's latest submitted version."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RevisionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    # a pending version replaced by a newer submission before anyone decided
    WITHDRAWN = "withdrawn"
    # an approved version replaced by a newer approved one
    SUPERSEDED = "superseded"


class BookingStatus(StrEnum):
    # prepaid mode: waiting for its payment (pay_by); the merchant is not asked yet
    UNPAID = "unpaid"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CHARGING = "charging"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


# a booking that holds its window: nobody else may book the charger then
BOOKING_TAKEN = (BookingStatus.ACCEPTED, BookingStatus.CHARGING)
