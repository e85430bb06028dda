"""The outbox's claims: a message is held by one sender at a time, retried with
backoff, given up after too many attempts."""

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from models import OutboxMessage
from models.base import utcnow
from services import outbox


async def test_claim_is_exclusive_and_retry_backs_off(open_db) -> None:
    async with open_db() as db:
        outbox.enqueue(db, 1, "listing_approved", revision_id=1)
        outbox.enqueue(db, 2, "listing_approved", revision_id=2)
        await db.commit()

    first = await outbox.claim_due(open_db)
    assert [m.chat_id for m in first] == [1, 2]
    assert await outbox.claim_due(open_db) == []  # held by the first sender

    async with open_db() as db:
        await outbox.mark_sent(db, first[0].id)
        await outbox.mark_retry(db, first[1], "network down")
        await db.commit()
        assert await outbox.pending_count(db) == 1
        retried = await db.get(OutboxMessage, first[1].id)
        assert retried.due_at > utcnow() and retried.claimed_until is None
        assert retried.last_error == "network down"

    async with open_db() as db:  # when due again it is claimed again
        retried.due_at = utcnow() - timedelta(seconds=1)
        await db.merge(retried)
        await db.commit()
    again = await outbox.claim_due(open_db)
    assert [m.id for m in again] == [first[1].id] and again[0].attempts == 2


async def test_expired_claim_is_taken_over(open_db) -> None:
    async with open_db() as db:
        outbox.enqueue(db, 1, "listing_approved", revision_id=1)
        await db.commit()
    (held,) = await outbox.claim_due(open_db)
    async with open_db() as db:  # the sender that held it died long ago
        row = await db.get(OutboxMessage, held.id)
        row.claimed_until = utcnow() - timedelta(seconds=1)
        await db.commit()
    assert [m.id for m in await outbox.claim_due(open_db)] == [held.id]


async def test_gives_up_after_max_attempts(open_db) -> None:
    async with open_db() as db:
        outbox.enqueue(db, 1, "listing_approved", revision_id=1)
        await db.commit()
    async with open_db() as db:
        row = (await db.scalars(select(OutboxMessage))).one()
        row.attempts = outbox.MAX_ATTEMPTS
        await outbox.mark_retry(db, row, "still failing")
        await db.commit()
        await db.refresh(row)
        assert row.failed_at is not None
        assert await outbox.pending_count(db) == 0


async def test_concurrent_senders_never_share_a_message(open_db) -> None:
    async with open_db() as db:
        for chat in range(60):
            outbox.enqueue(db, chat + 1, "listing_approved", revision_id=chat)
        await db.commit()
    claimed: list[int] = []
    for _ in range(5):  # rounds of six senders claiming at once
        batches = await asyncio.gather(*(outbox.claim_due(open_db, limit=20) for _ in range(6)))
        claimed += [m.id for batch in batches for m in batch]
    assert len(claimed) == len(set(claimed)) == 60


async def test_flood_control_does_not_count_as_an_attempt(open_db) -> None:
    async with open_db() as db:
        outbox.enqueue(db, 1, "listing_approved", revision_id=1)
        await db.commit()
    (message,) = await outbox.claim_due(open_db)
    async with open_db() as db:
        await outbox.mark_retry(db, message, "429", 3, count_attempt=False)
        await db.commit()
        stored = await db.get(OutboxMessage, message.id)
        assert stored.attempts == 0 and stored.failed_at is None


async def test_a_sender_whose_claim_was_taken_over_does_not_send(open_db) -> None:
    """A stalled sender's lease ran out and another instance claimed the row: the
    first one's renewal before sending fails, so the message goes out once."""
    from services.tx import transaction

    async with open_db() as db, transaction(db):
        outbox.enqueue(db, 42, "order", order_id=1)
    (slow,) = await outbox.claim_due(open_db)
    async with open_db() as db, transaction(db):  # its lease runs out…
        await db.execute(
            update(OutboxMessage).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    (fast,) = await outbox.claim_due(open_db)  # …and another sender takes the row
    async with open_db() as db, transaction(db):
        assert await outbox.renew_claim(db, fast)
        assert not await outbox.renew_claim(db, slow)


async def test_parts_are_recorded_only_by_the_claim_holder(open_db) -> None:
    """Each settled part of a message is kept across retries; a sender whose claim
    another took over records nothing (the new owner decides)."""
    from services.tx import transaction

    async with open_db() as db, transaction(db):
        outbox.enqueue(db, 42, "booking_accepted", booking_id=1)
    (slow,) = await outbox.claim_due(open_db)
    assert slow.parts_done == {}
    async with open_db() as db, transaction(db):
        assert await outbox.mark_part(db, slow, "text", outbox.PART_SENT)
        await outbox.mark_retry(db, slow, "429", 1, count_attempt=False)
    async with open_db() as db, transaction(db):
        await db.execute(update(OutboxMessage).values(due_at=utcnow()))
    (fast,) = await outbox.claim_due(open_db)
    assert fast.parts_done == {"text": "sent"}  # the retry sends only the rest
    async with open_db() as db, transaction(db):
        assert not await outbox.mark_part(db, slow, "place", outbox.PART_SENT)
        assert await outbox.mark_part(db, fast, "place", "failed: Bad Request")
    async with open_db() as db:
        stored = await db.get(OutboxMessage, fast.id)
        assert stored.parts_done == {"text": "sent", "place": "failed: Bad Request"}
