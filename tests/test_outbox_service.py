"""The outbox's claims: a message is held by one sender at a time, retried with
backoff, given up after too many attempts."""

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from models import OutboxMessage
from models.base import utcnow
from services import outbox


async def test_claim_is_exclusive_and_retry_backs_off(sessions) -> None:
    async with sessions() as session:
        outbox.enqueue(session, 1, "listing_approved", revision_id=1)
        outbox.enqueue(session, 2, "listing_approved", revision_id=2)
        await session.commit()

    first = await outbox.claim_due(sessions)
    assert [m.chat_id for m in first] == [1, 2]
    assert await outbox.claim_due(sessions) == []  # held by the first sender

    async with sessions() as session:
        await outbox.mark_sent(session, first[0].id)
        await outbox.mark_retry(session, first[1], "network down")
        await session.commit()
        assert await outbox.pending_count(session) == 1
        retried = await session.get(OutboxMessage, first[1].id)
        assert retried.due_at > utcnow() and retried.claimed_until is None
        assert retried.last_error == "network down"

    async with sessions() as session:  # when due again it is claimed again
        retried.due_at = utcnow() - timedelta(seconds=1)
        await session.merge(retried)
        await session.commit()
    again = await outbox.claim_due(sessions)
    assert [m.id for m in again] == [first[1].id] and again[0].attempts == 2


async def test_expired_claim_is_taken_over(sessions) -> None:
    async with sessions() as session:
        outbox.enqueue(session, 1, "listing_approved", revision_id=1)
        await session.commit()
    (held,) = await outbox.claim_due(sessions)
    async with sessions() as session:  # the sender that held it died long ago
        row = await session.get(OutboxMessage, held.id)
        row.claimed_until = utcnow() - timedelta(seconds=1)
        await session.commit()
    assert [m.id for m in await outbox.claim_due(sessions)] == [held.id]


async def test_gives_up_after_max_attempts(sessions) -> None:
    async with sessions() as session:
        outbox.enqueue(session, 1, "listing_approved", revision_id=1)
        await session.commit()
    async with sessions() as session:
        row = (await session.scalars(select(OutboxMessage))).one()
        row.attempts = outbox.MAX_ATTEMPTS
        await outbox.mark_retry(session, row, "still failing")
        await session.commit()
        await session.refresh(row)
        assert row.failed_at is not None
        assert await outbox.pending_count(session) == 0


async def test_concurrent_senders_never_share_a_message(sessions) -> None:
    async with sessions() as session:
        for chat in range(60):
            outbox.enqueue(session, chat + 1, "listing_approved", revision_id=chat)
        await session.commit()
    claimed: list[int] = []
    for _ in range(5):  # rounds of six senders claiming at once
        batches = await asyncio.gather(*(outbox.claim_due(sessions, limit=20) for _ in range(6)))
        claimed += [m.id for batch in batches for m in batch]
    assert len(claimed) == len(set(claimed)) == 60


async def test_flood_control_does_not_count_as_an_attempt(sessions) -> None:
    async with sessions() as session:
        outbox.enqueue(session, 1, "listing_approved", revision_id=1)
        await session.commit()
    (message,) = await outbox.claim_due(sessions)
    async with sessions() as session:
        await outbox.mark_retry(session, message, "429", 3, count_attempt=False)
        await session.commit()
        stored = await session.get(OutboxMessage, message.id)
        assert stored.attempts == 0 and stored.failed_at is None


async def test_a_sender_whose_claim_was_taken_over_does_not_send(sessions) -> None:
    """A stalled sender's lease ran out and another instance claimed the row: the
    first one's renewal before sending fails, so the message goes out once."""
    from services.tx import transaction

    async with sessions() as session, transaction(session):
        outbox.enqueue(session, 42, "order", order_id=1)
    (slow,) = await outbox.claim_due(sessions)
    async with sessions() as session, transaction(session):  # its lease runs out…
        await session.execute(
            update(OutboxMessage).values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    (fast,) = await outbox.claim_due(sessions)  # …and another sender takes the row
    async with sessions() as session, transaction(session):
        assert await outbox.renew_claim(session, fast)
        assert not await outbox.renew_claim(session, slow)


async def test_parts_are_recorded_only_by_the_claim_holder(sessions) -> None:
    """Each settled part of a message is kept across retries; a sender whose claim
    another took over records nothing (the new owner decides)."""
    from services.tx import transaction

    async with sessions() as session, transaction(session):
        outbox.enqueue(session, 42, "booking_accepted", booking_id=1)
    (slow,) = await outbox.claim_due(sessions)
    assert slow.parts_done == {}
    async with sessions() as session, transaction(session):
        assert await outbox.mark_part(session, slow, "text", outbox.PART_SENT)
        await outbox.mark_retry(session, slow, "429", 1, count_attempt=False)
    async with sessions() as session, transaction(session):
        await session.execute(update(OutboxMessage).values(due_at=utcnow()))
    (fast,) = await outbox.claim_due(sessions)
    assert fast.parts_done == {"text": "sent"}  # the retry sends only the rest
    async with sessions() as session, transaction(session):
        assert not await outbox.mark_part(session, slow, "place", outbox.PART_SENT)
        assert await outbox.mark_part(session, fast, "place", "failed: Bad Request")
    async with sessions() as session:
        stored = await session.get(OutboxMessage, fast.id)
        assert stored.parts_done == {"text": "sent", "place": "failed: Bad Request"}
