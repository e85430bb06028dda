"""Cards: messages that show the state of something, kept true.

A card (the merchant's request, the rider's booking, the charging card, a review
card) is recorded with its chat and message id when it is sent. A state change
calls ``refresh`` in its own transaction, which owes each chat holding a card of
that subject one ``CARD_REFRESH`` (the outbox edits them to the state as it is
when the edit goes out). A card recorded after the change it missed (sent from
an older read) is refreshed at once, so no copy is left behind.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, and_, bindparam, or_, select, update

from models import Booking, Card, ChargingSession, ListingRevision, OutboxMessage
from models.db import upsert_insert
from services import outbox
from services.outbox import OutboxKind
from services.tx import Db, read, transaction


class Subject(StrEnum):
    BOOKING = "booking"
    CHARGE = "charge"
    REVISION = "revision"


class CardRole(StrEnum):
    """Which card of a subject a message is; ui/views/cards.py renders each."""

    BOOKING_REQUEST = "booking_request"  # the merchant's request card (Accept / Reject)
    BOOKING = "booking"  # the rider's booking card (sent, accepted, opened from /bookings)
    CHARGE = "charge"  # the rider's charging card (Status / Stop)
    CHARGE_MERCHANT = "charge_merchant"  # the merchant's card of a running session
    CHARGE_WARNING = "charge_warning"  # the rider's "ends in 5 minutes" (keeps its words)
    REVIEW = "review"  # a copy of a review card (/pending re-sends them)


SUBJECTS = {
    CardRole.BOOKING_REQUEST: Subject.BOOKING,
    CardRole.BOOKING: Subject.BOOKING,
    CardRole.CHARGE: Subject.CHARGE,
    CardRole.CHARGE_MERCHANT: Subject.CHARGE,
    CardRole.CHARGE_WARNING: Subject.CHARGE,
    CardRole.REVIEW: Subject.REVISION,
}


@dataclass(frozen=True, slots=True)
class CardInfo:
    id: int
    role: CardRole
    subject_id: int
    chat_id: int
    message_id: int
    is_photo: bool


# Built once (building a statement costs more than running it: docs/benchmarks.md).
# The state a card of each subject shows:
_STATE_OF = {
    subject: select(model.status).where(model.id == bindparam("subject_id"))
    for subject, model in (
        (Subject.BOOKING, Booking),
        (Subject.CHARGE, ChargingSession),
        (Subject.REVISION, ListingRevision),
    )
}
# the chats holding a card of one subject (refresh_all for one subject)
_HELD_ONE = (
    select(Card.subject, Card.subject_id, Card.chat_id)
    .where(Card.subject == bindparam("subject"), Card.subject_id == bindparam("subject_id"))
    .distinct()
)


# a card recorded: a new row, or the message already recorded becomes this card
def _record_statement(dialect: str) -> Any:
    statement = upsert_insert(dialect, Card)
    return statement.on_conflict_do_update(
        index_elements=[Card.chat_id, Card.message_id],
        set_={c: statement.excluded[c] for c in ("subject", "subject_id", "role", "is_photo")},
    )


_RECORD = {dialect: _record_statement(dialect) for dialect in ("postgresql", "sqlite")}


async def state_of(db: Db, subject: Subject, subject_id: int) -> str | None:
    """The state a card of this subject shows (what a refresh would change)."""
    status = await db.scalar(_STATE_OF[subject], {"subject_id": subject_id})
    return None if status is None else str(status)


async def record(
    db: Db,
    role: CardRole,
    subject_id: int,
    chat_id: int,
    message_id: int,
    *,
    shown: str | None = None,
    is_photo: bool = False,
) -> None:
    """Remember a card just sent (or a message just edited into one). ``shown``:
    the state it was rendered from; when the state moved on meanwhile, the card is
    refreshed at once. A message already recorded becomes this card."""
    subject = SUBJECTS[role]
    row = {
        "chat_id": chat_id,
        "message_id": message_id,
        "subject": subject.value,
        "subject_id": subject_id,
        "role": role.value,
        "is_photo": is_photo,
    }
    async with transaction(db):
        await db.execute(_RECORD[db.get_bind().dialect.name], row)
        if shown is not None and await state_of(db, subject, subject_id) != shown:
            _owe(db, subject, subject_id, chat_id)


def _owe(
    db: Db, subject: Subject, subject_id: int, chat_id: int, live: dict[str, Any] | None = None
) -> None:
    extra = {"live": live} if live is not None else {}
    outbox.enqueue(
        db,
        chat_id,
        OutboxKind.CARD_REFRESH,
        subject=subject.value,
        subject_id=subject_id,
        **extra,
    )


async def refresh(db: Db, subject: Subject, subject_id: int) -> None:
    """Inside the transaction of a state change: every chat holding a card of the
    subject is owed its edit (one outbox message per chat, which edits them all)."""
    await refresh_all(db, (subject, subject_id))


async def refresh_all(db: Db, *subjects: tuple[Subject, int]) -> None:
    """``refresh`` for several subjects that one change moved, in one read."""
    if not subjects:
        return
    # Read without flushing what the transaction owes so far: those messages then
    # go in one INSERT with the edits owed here, at commit. A card written or
    # deleted in this transaction must be seen as it now is: flushed first.
    if any(isinstance(row, Card) for row in (*db.new, *db.dirty, *db.deleted)):
        await db.flush()
    with db.no_autoflush:
        held = await _held(db, subjects)
    asked = {(subject.value, subject_id): n for n, (subject, subject_id) in enumerate(subjects)}
    # in the order asked, then by chat (the rows are distinct: each chat once)
    for value, subject_id, chat_id in sorted(held, key=lambda r: (asked[(r[0], r[1])], r[2])):
        _owe(db, Subject(value), subject_id, chat_id)


async def _held(db: Db, subjects: Sequence[tuple[Subject, int]]) -> Sequence[Row[str, int, int]]:
    """(subject, subject id, chat id) of each chat holding a card of the subjects."""
    if len(subjects) == 1:
        ((subject, subject_id),) = subjects
        one = {"subject": subject.value, "subject_id": subject_id}
        return (await db.execute(_HELD_ONE, one)).all()
    return (
        await db.execute(
            select(Card.subject, Card.subject_id, Card.chat_id)
            .where(
                or_(
                    *(
                        and_(Card.subject == subject.value, Card.subject_id == subject_id)
                        for subject, subject_id in subjects
                    )
                )
            )
            .distinct()
        )
    ).all()


async def refresh_live(db: Db, subject: Subject, subject_id: int, live: dict[str, Any]) -> int:
    """A running session's periodic edit, carrying the plug's reading (``live``),
    owed to each chat holding one of its cards, unless an edit of them is still owed
    there (the outbox is behind: one is enough). Returns how many were owed."""
    chats = set(
        (
            await db.scalars(
                select(Card.chat_id).where(
                    Card.subject == subject.value, Card.subject_id == subject_id
                )
            )
        ).all()
    )
    waiting = (
        await db.execute(
            select(OutboxMessage.chat_id, OutboxMessage.payload).where(
                OutboxMessage.kind == OutboxKind.CARD_REFRESH.value,
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.chat_id.in_(chats),
            )
        )
    ).all()
    for chat_id, payload in waiting:
        if payload.get("subject") == subject.value and payload.get("subject_id") == subject_id:
            chats.discard(chat_id)
    for chat_id in sorted(chats):
        _owe(db, subject, subject_id, chat_id, live)
    return len(chats)


async def in_chat(db: Db, subject: Subject, subject_id: int, chat_id: int) -> list[CardInfo]:
    """The cards of a subject in one chat, oldest first."""
    async with read(db):
        rows = (
            await db.scalars(
                select(Card)
                .where(
                    Card.subject == subject.value,
                    Card.subject_id == subject_id,
                    Card.chat_id == chat_id,
                )
                .order_by(Card.id)
            )
        ).all()
        return [
            CardInfo(r.id, CardRole(r.role), r.subject_id, r.chat_id, r.message_id, r.is_photo)
            for r in rows
        ]


async def moved(db: Db, card_id: int, message_id: int, *, is_photo: bool = False) -> None:
    """The card could not be edited (too old, deleted) and was sent again: the new
    message is the card now."""
    async with transaction(db):
        await db.execute(
            update(Card).where(Card.id == card_id).values(message_id=message_id, is_photo=is_photo)
        )
