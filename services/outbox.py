"""The notification port: messages owed to people, kept in the database.

Services call ``enqueue`` inside the transaction that changes state, so a
message exists exactly when its cause was committed. ``bot/outbox_sender``
claims due rows, renders and delivers them, and reports back here.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, or_, select, true, update

from models import OutboxMessage
from models.base import utcnow
from services.tx import Db, OpenDb, transaction


class OutboxKind(StrEnum):
    """What a message owed to someone says; ui/notifications.py renders each kind."""

    REVIEW_CARD = "review_card"  # a version to review, posted in the moderation group
    REVIEW_CARD_REFRESH = "review_card_refresh"  # the card again, after a decision
    LISTING_APPROVED = "listing_approved"
    LISTING_REJECTED = "listing_rejected"
    QR_LABELS = "qr_labels"  # the approved listing's labels, to its merchant
    BOOKING_REQUEST = "booking_request"  # to the merchant, with Accept and Reject
    BOOKING_ACCEPTED = "booking_accepted"
    BOOKING_REJECTED = "booking_rejected"
    BOOKING_EXPIRED = "booking_expired"  # to the user: nobody answered in time
    BOOKING_EXPIRED_MERCHANT = "booking_expired_merchant"
    BOOKING_CANCELLED = "booking_cancelled"  # to the merchant
    BOOKING_NO_SHOW = "booking_no_show"  # to the merchant
    BOOKING_NO_SHOW_USER = "booking_no_show_user"
    SESSION_STARTED = "session_started"  # to the merchant
    SESSION_RUNNING = "session_running"  # to the user, when recovery found it running
    SESSION_START_FAILED = "session_start_failed"
    SESSION_WARNING = "session_warning"  # to the user, before the window ends
    ORDER = "order"  # to the user, the merchant and the platform
    OWED_CALL = "owed_call"  # a direct reply Telegram refused at the time (ui/owed.py)
    # the cards of a subject in one chat, edited to its state now (services/cards.py)
    CARD_REFRESH = "card_refresh"
    BOOKING_NUDGE = "booking_nudge"  # to the merchant: a request's answer is due soon
    BOOKING_REMINDER = "booking_reminder"  # to the rider: before the window, at its start
    BOOKING_ON_THE_WAY = "booking_on_the_way"  # to the merchant: the rider is coming
    # money (#14)
    INVOICE = "invoice"  # to the user: an invoice to pay (a booking, a top-up, a shortfall)
    PAYMENT_RECEIVED = "payment_received"  # to the user: credited, and what it paid for
    BOOKING_PAYMENT_EXPIRED = "booking_payment_expired"  # to the user: not paid in time
    ORDER_PAID_AT_SHOP = "order_paid_at_shop"  # to the user: the merchant marked it paid
    REFUND_REQUESTED = "refund_requested"  # to the admins' group
    REFUND_DONE = "refund_done"  # to the user
    REFUND_DECLINED = "refund_declined"  # to the user
    PAYOUT_RECORDED = "payout_recorded"  # to the merchant


@dataclass(frozen=True)
class Notification:
    """A message owed, as its renderer sees it (plain values, not the row)."""

    id: int
    chat_id: int
    kind: OutboxKind
    payload: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxMessage) -> "Notification":
        return cls(row.id, row.chat_id, OutboxKind(row.kind), dict(row.payload))


# a claim is a lease: short, so that the messages of an instance that died are
# taken over within seconds; a batch is small enough to be sent well within it
# (25 messages/s pacing), so a live sender does not lose its claim mid-batch
CLAIM_SECONDS = 15
MAX_ATTEMPTS = 12
# the settled parts of a message (``parts_done``): sent, or refused for good and why
PART_SENT = "sent"
PART_FAILED = "failed: "


def enqueue(db: Db, chat_id: int, kind: OutboxKind, **payload: Any) -> None:
    db.add(OutboxMessage(chat_id=chat_id, kind=str(kind), payload=payload))


def enqueue_later(
    db: Db, chat_id: int, kind: OutboxKind, delay_seconds: float, payload: dict[str, Any]
) -> None:
    """``enqueue``, due only after ``delay_seconds`` (e.g. Telegram's ``retry_after``)."""
    due = utcnow() + timedelta(seconds=max(0.0, delay_seconds))
    db.add(OutboxMessage(chat_id=chat_id, kind=str(kind), payload=payload, due_at=due))


async def owe_call(
    open_db: OpenDb, chat_id: int, delay_seconds: float, payload: dict[str, Any]
) -> None:
    """A direct reply Telegram refused for now, kept to be made once it lets us
    (ui/owed.py), due after ``delay_seconds``."""
    async with open_db() as db, transaction(db):
        enqueue_later(db, chat_id, OutboxKind.OWED_CALL, delay_seconds, payload)


def is_edit(message: OutboxMessage) -> bool:
    """A card edited to a new state: cosmetic (the next edit shows the same), so it
    goes after messages to people, in a lane of its own."""
    return message.kind == OutboxKind.CARD_REFRESH


# messages to people first; card edits after them
_IS_EDIT = OutboxMessage.kind == str(OutboxKind.CARD_REFRESH)
_FIRST = case((_IS_EDIT, 1), else_=0)


async def claim_due(
    open_db: OpenDb, limit: int = 10, *, edits: bool | None = None
) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages for ``CLAIM_SECONDS``, messages to people
    before card edits, oldest first (``edits``: only card edits, or none of them).

    The claim is a conditional UPDATE, so two senders never hold the same row;
    a sender that dies releases its rows when the claim runs out.
    """
    now = utcnow()
    free = or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)
    pick = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.due_at <= now,
            free,
            true() if edits is None else _IS_EDIT if edits else ~_IS_EDIT,
        )
        .order_by(_FIRST, OutboxMessage.id)
        .limit(limit)
        # PostgreSQL: senders take different rows instead of queueing on the same
        # ones (SQLite has no row locks: BEGIN IMMEDIATE serialises)
        .with_for_update(skip_locked=True)
    )
    async with open_db() as db, transaction(db):
        # one statement: pick, claim and read the rows
        rows = (
            await db.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(pick), free)
                .values(
                    claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                    attempts=OutboxMessage.attempts + 1,
                )
                .returning(OutboxMessage)
                .execution_options(populate_existing=True, synchronize_session=False)
            )
        ).all()
    return sorted(rows, key=lambda row: (is_edit(row), row.id))


def claim_fresh(message: OutboxMessage) -> bool:
    """Claimed (or renewed) within the last few seconds: no other sender can take the
    row before ``renew_claim`` would have let it, so sending needs no renewal first."""
    left = message.claimed_until
    return left is not None and _aware(left) - utcnow() > timedelta(seconds=CLAIM_SECONDS - 5)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def renew_claim(db: Db, message: OutboxMessage) -> bool:
    """Extend our claim right before sending; False when it ran out and another
    sender took the row (then we must not send it)."""
    token = utcnow() + timedelta(seconds=CLAIM_SECONDS)
    changed = await db.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message.id,
            OutboxMessage.claimed_until == message.claimed_until,
            OutboxMessage.sent_at.is_(None),
        )
        .values(claimed_until=token)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    message.claimed_until = token
    return True


async def mark_part(db: Db, message: OutboxMessage, key: str, outcome: str) -> bool:
    """Record one part of a message as settled (``PART_SENT``, or ``PART_FAILED``
    and the reason when Telegram refused it for good), so no retry sends it
    again; False when our claim ran out and another sender took the row."""
    done = {**message.parts_done, key: outcome[:300]}
    changed = await db.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message.id,
            OutboxMessage.claimed_until == message.claimed_until,
            OutboxMessage.sent_at.is_(None),
        )
        .values(parts_done=done)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    message.parts_done = done
    return True


async def mark_sent(db: Db, message_id: int, error: str | None = None) -> None:
    """Done; ``error`` says which parts Telegram refused, when some were."""
    await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(sent_at=utcnow(), claimed_until=None, last_error=error[:1000] if error else None)
    )


async def mark_retry(
    db: Db,
    message: OutboxMessage,
    error: str,
    delay_seconds: float | None = None,
    *,
    count_attempt: bool = True,
) -> None:
    """Put a message back for later; after ``MAX_ATTEMPTS`` it is given up."""
    if delay_seconds is None:
        delay_seconds = min(2 ** min(message.attempts, 10), 600)
    values: dict[str, Any] = {"claimed_until": None, "last_error": error[:1000]}
    if not count_attempt:  # flood control is Telegram pacing us, not a failure
        values["attempts"] = OutboxMessage.attempts - 1
    if count_attempt and message.attempts >= MAX_ATTEMPTS:
        values["failed_at"] = utcnow()
    else:
        values["due_at"] = utcnow() + timedelta(seconds=delay_seconds)
    await db.execute(update(OutboxMessage).where(OutboxMessage.id == message.id).values(**values))


async def mark_failed(db: Db, message_id: int, error: str) -> None:
    """Give up at once: Telegram said the message can never be delivered."""
    await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(failed_at=utcnow(), claimed_until=None, last_error=error[:1000])
    )


async def pending_count(db: Db) -> int:
    from sqlalchemy import func

    return (
        await db.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
        )
        or 0
    )
