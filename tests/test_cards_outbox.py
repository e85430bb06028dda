"""Cards that stay true (issue #16), the outbox's side: a state change owes each
chat holding a card its edit, written in the same transaction; the edit goes out
once, "message is not modified" is success, and a message too old or gone to edit
gets a new one, which is the card from then on.

The real sender and aiogram's HTTP session against the local Bot API server, on
SQLite and PostgreSQL.
"""

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.outbox_sender import OutboxSender
from bot.settings import Settings
from models import Card, Charger, OutboxMessage
from models.base import utcnow
from services import bookings, cards
from services.bookings import BookingRules
from services.cards import CardRole, Subject
from services.outbox import OutboxKind
from services.tx import transaction
from tests import test_outbox_sender as outbox_flow
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import current
from tests.test_outbox_sender import MERCHANT, RIDER, approved_listing, drain, seed_users

# the outbox sender's fixtures: the local Bot API server, the bot, the real sender
api, bot, sender, settings = (
    outbox_flow.api,
    outbox_flow.bot,
    outbox_flow.sender,
    outbox_flow.settings,
)

OpenDb = async_sessionmaker[AsyncSession]


async def requested(api: FakeBotAPI, open_db: OpenDb, settings: Settings) -> int:
    """The rider's request for tomorrow; its card not sent yet. The booking's id."""
    await seed_users(open_db)
    listing_id = await approved_listing(api, open_db)
    start = (utcnow() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    async with open_db() as db:
        charger_id = (
            await db.scalars(select(Charger.id).where(Charger.listing_id == listing_id))
        ).one()
        booking = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=1),
            rules=BookingRules(zone=settings.zone),
        )
    return booking.id


async def card_rows(open_db: OpenDb, chat_id: int = MERCHANT) -> list[Card]:
    async with open_db() as db:
        query = select(Card).where(Card.chat_id == chat_id).order_by(Card.id)
        return list((await db.scalars(query)).all())


async def refreshes(open_db: OpenDb) -> list[OutboxMessage]:
    async with open_db() as db:
        query = select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.CARD_REFRESH)
        return list((await db.scalars(query.order_by(OutboxMessage.id))).all())


async def test_request_card_edited_not_modified_and_too_old(
    api: FakeBotAPI, open_db: OpenDb, settings: Settings, sender: OutboxSender
) -> None:
    booking_id = await requested(api, open_db, settings)
    await drain(sender, open_db)
    (card,) = await card_rows(open_db)
    assert (card.role, card.subject_id, card.chat_id) == ("booking_request", booking_id, MERCHANT)
    request = current(api, MERCHANT, card.message_id)
    assert "New booking request from Ravi" in plain(request)
    assert buttons(request) == [["✅ Accept", "❌ Reject"]]

    # a refresh with nothing changed: Telegram says "not modified", which is success
    async with open_db() as db, transaction(db):
        await cards.refresh(db, Subject.BOOKING, booking_id)
    before = len(api.bot_messages(MERCHANT))
    await drain(sender, open_db)
    (unchanged,) = await refreshes(open_db)
    assert unchanged.sent_at is not None and unchanged.failed_at is None
    assert unchanged.last_error is None and unchanged.parts_done == {f"card:{card.id}": "sent"}
    assert len(api.bot_messages(MERCHANT)) == before

    # accepted, but the card is too old to edit: it comes again as a new message
    async with open_db() as db:
        await bookings.accept(db, booking_id=booking_id, merchant_id=MERCHANT)
    api.fail_next(
        "editMessageText",
        error_code=400,
        description="Bad Request: message can't be edited",
        retry_after=None,
    )
    await drain(sender, open_db)
    (moved,) = await card_rows(open_db)
    assert moved.message_id != card.message_id
    new = current(api, MERCHANT, moved.message_id)
    assert "✅ Accepted by you at" in plain(new) and not buttons(new)
    assert len(api.bot_messages(MERCHANT)) == before + 1
    assert all(r.failed_at is None and r.sent_at is not None for r in await refreshes(open_db))

    # the rider cancels: the card that is now the card says so, once
    async with open_db() as db:
        await bookings.cancel(db, booking_id=booking_id, user_id=RIDER)
    await drain(sender, open_db)
    cancelled = current(api, MERCHANT, moved.message_id)
    assert "❌ Cancelled by the rider at" in plain(cancelled) and not buttons(cancelled)
    assert "Accepted by you" not in plain(cancelled)
    assert len(api.bot_messages(MERCHANT)) == before + 2  # + "the user cancelled"


async def test_a_deleted_card_comes_again(
    api: FakeBotAPI, open_db: OpenDb, settings: Settings, sender: OutboxSender, bot
) -> None:
    booking_id = await requested(api, open_db, settings)
    await drain(sender, open_db)
    (card,) = await card_rows(open_db)
    await bot.delete_message(MERCHANT, card.message_id)
    async with open_db() as db:
        await bookings.reject(db, booking_id=booking_id, merchant_id=MERCHANT, reason="Closed")
    await drain(sender, open_db)
    (moved,) = await card_rows(open_db)
    assert moved.message_id != card.message_id
    text = plain(current(api, MERCHANT, moved.message_id))
    assert "❌ Rejected by you at" in text and "Reason: Closed" in text


async def test_a_card_recorded_after_the_change_it_missed_is_refreshed(
    api: FakeBotAPI, open_db: OpenDb, settings: Settings, sender: OutboxSender, bot
) -> None:
    """A card rendered before a change but recorded after it (one sender slow, the
    change committed in between) is owed its edit at once."""
    booking_id = await requested(api, open_db, settings)
    await drain(sender, open_db)
    stale = await bot.send_message(RIDER, "⏳ waiting for the merchant")
    async with open_db() as db:
        await bookings.accept(db, booking_id=booking_id, merchant_id=MERCHANT)
    await drain(sender, open_db)
    async with open_db() as db:
        await cards.record(
            db, CardRole.BOOKING, booking_id, RIDER, stale.message_id, shown="requested"
        )
    owed = [r for r in await refreshes(open_db) if r.chat_id == RIDER and r.sent_at is None]
    assert [r.payload for r in owed] == [{"subject": "booking", "subject_id": booking_id}]
    await drain(sender, open_db)
    assert "Booking accepted" in plain(current(api, RIDER, stale.message_id))

    # recorded as it is now: nothing owed
    async with open_db() as db:
        await cards.record(
            db, CardRole.BOOKING, booking_id, RIDER, stale.message_id, shown="accepted"
        )
    assert all(r.sent_at is not None for r in await refreshes(open_db))
