"""The outbox sender delivers a notification of several parts part by part
(issue #12, item 6): the text first, each part once, a part Telegram refuses for
good (400) does not hold back the others, a 429 in the middle does not send the
parts before it again; and a venue is never sent without an address.

The real sender and aiogram's HTTP session against the local Bot API server and
its fault injection (``fail_next``), on SQLite and PostgreSQL.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.factory import create_bot
from bot.outbox_sender import OutboxSender, TokenBucket
from bot.settings import Settings, load_settings
from models import Booking, Charger, ListingRevision, OutboxMessage, User
from models.base import utcnow
from services import bookings, listings, outbox
from services.bookings import BookingRules
from services.tx import transaction
from tests import factories
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, start_api

MERCHANT, RIDER = 1001, 2001
REFUSED = "Bad Request: wrong file identifier/HTTP URL specified"
FAILED = f"failed: Telegram server says - {REFUSED}"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"))
    yield server
    await server.stop()


@pytest.fixture
def settings(api: FakeBotAPI, database_url: str) -> Settings:
    return load_settings(
        bot_token=api.token,
        telegram_api_url=api.url,
        database_url=database_url,
        moderation_chat_id=GROUP,
        admin_ids=",".join(str(a) for a in ADMINS),
        _env_file=None,
    )


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    bot = create_bot(settings, timeout=10, wait_out_flood_control=False)  # as App makes it
    yield bot
    await bot.session.close()


@pytest.fixture
def sender(bot: Bot, open_db: async_sessionmaker[AsyncSession], settings: Settings) -> OutboxSender:
    return OutboxSender(bot, open_db, settings, rate_per_second=200)


async def drain(
    sender: OutboxSender,
    open_db: async_sessionmaker[AsyncSession],
    timeout: float = 10,  # noqa: ASYNC109
) -> None:
    """Run the sender until nothing is owed (a 429 makes a row due a second later)."""
    async with asyncio.timeout(timeout):
        while True:
            await sender.drain_once()
            async with open_db() as db:
                if await outbox.pending_count(db) == 0:
                    return
            await asyncio.sleep(0.05)


async def only(open_db: async_sessionmaker[AsyncSession], kind: str) -> OutboxMessage:
    """The newest row of ``kind`` (the one the test enqueued)."""
    async with open_db() as db:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind)
        return (await db.scalars(query.order_by(OutboxMessage.id.desc()))).first()


async def settle_all(open_db: async_sessionmaker[AsyncSession]) -> None:
    """Count everything owed so far as delivered: a test looks at what follows."""
    async with open_db() as db, transaction(db):
        await db.execute(
            update(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).values(sent_at=utcnow())
        )


async def seed_users(open_db: async_sessionmaker[AsyncSession]) -> None:
    async with open_db() as db, transaction(db):
        db.add_all([User(id=MERCHANT, first_name="Mia"), User(id=RIDER, first_name="Ravi")])


async def approved_listing(
    api: FakeBotAPI, open_db: async_sessionmaker[AsyncSession], chargers: int = 1, **fields: object
) -> int:
    """An approved listing open around the clock, its notifications settled; its id."""
    photo = api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    draft = factories.listing(chargers=chargers, photo_file_id=photo, **fields)
    for charger in draft.chargers:
        charger.hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
    async with open_db() as db:
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=GROUP
        )
        await listings.approve(
            db, revision_id=revision.id, admin_id=ADMINS[0], moderation_chat_id=GROUP
        )
    await settle_all(open_db)
    return revision.listing_id


async def accepted_booking(
    api: FakeBotAPI,
    open_db: async_sessionmaker[AsyncSession],
    settings: Settings,
    **fields: object,
) -> None:
    """The merchant accepted the rider's booking: only "booking_accepted" is owed."""
    await seed_users(open_db)
    listing_id = await approved_listing(api, open_db, **fields)
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
        await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT)
    async with open_db() as db, transaction(db):
        await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind != "booking_accepted")
            .values(sent_at=utcnow())
        )


def texts(api: FakeBotAPI, chat_id: int) -> list[dict]:
    return [m for m in api.bot_messages(chat_id) if "text" in m]


async def test_an_empty_address_gets_a_location_and_the_text(
    api: FakeBotAPI, open_db, settings: Settings, sender: OutboxSender
) -> None:
    """Telegram refuses a venue without an address; it held the text back too."""
    await accepted_booking(api, open_db, settings, address="")
    await drain(sender, open_db)
    messages = api.bot_messages(RIDER)
    assert ["text" in m for m in messages] == [True, False]  # the text first
    assert "Booking accepted" in plain(messages[0])
    assert "venue" not in messages[1]
    assert messages[1]["location"]["latitude"] == pytest.approx(31.2304, abs=1e-4)
    assert not api.calls("sendVenue")
    row = await only(open_db, "booking_accepted")
    assert row.sent_at is not None and row.last_error is None
    assert row.parts_done == {"text": "sent", "place": "sent"}


@pytest.mark.parametrize("method", ["sendMessage", "sendVenue"])
async def test_flood_control_in_the_middle_sends_each_part_once(
    api: FakeBotAPI, open_db, settings: Settings, sender: OutboxSender, method: str
) -> None:
    """A 429 on either part: the part before it is not sent again (the venue went
    out three times), the part refused goes out after the wait."""
    await accepted_booking(api, open_db, settings)
    api.fail_next(method, error_code=429, retry_after=1)
    await sender.drain_once()
    row = await only(open_db, "booking_accepted")
    assert row.sent_at is None and row.attempts == 0  # flood control is not a failure
    assert row.due_at > utcnow()  # waits retry_after
    assert len(row.parts_done) == (1 if method == "sendVenue" else 0)

    await drain(sender, open_db)
    messages = api.bot_messages(RIDER)
    assert [("text" in m, "venue" in m) for m in messages] == [(True, False), (False, True)]
    assert messages[1]["venue"]["address"] == "1 Nanjing Rd"
    assert len(api.calls(method)) == 2  # the refused call and the one after the wait
    row = await only(open_db, "booking_accepted")
    assert row.sent_at is not None and row.parts_done == {"text": "sent", "place": "sent"}


async def test_a_refused_text_does_not_hold_back_the_place(
    api: FakeBotAPI, open_db, settings: Settings, sender: OutboxSender
) -> None:
    await accepted_booking(api, open_db, settings)
    api.fail_next("sendMessage", error_code=400, description=REFUSED, retry_after=None)
    await drain(sender, open_db)
    assert [m for m in api.bot_messages(RIDER) if "venue" in m]
    assert not texts(api, RIDER)
    row = await only(open_db, "booking_accepted")
    assert row.parts_done == {"text": FAILED, "place": "sent"}
    assert row.sent_at is not None and row.failed_at is None
    assert row.last_error and row.last_error.startswith("text: ") and REFUSED in row.last_error


async def test_a_refused_place_does_not_hold_back_the_text(
    api: FakeBotAPI, open_db, settings: Settings, sender: OutboxSender
) -> None:
    await accepted_booking(api, open_db, settings)
    api.fail_next("sendVenue", error_code=400, description=REFUSED, retry_after=None)
    await drain(sender, open_db)
    (message,) = api.bot_messages(RIDER)
    assert "Booking accepted" in plain(message)
    row = await only(open_db, "booking_accepted")
    assert row.parts_done == {"text": "sent", "place": FAILED} and row.sent_at is not None


async def test_every_part_refused_is_a_failed_message(
    api: FakeBotAPI, open_db, settings: Settings, sender: OutboxSender
) -> None:
    await accepted_booking(api, open_db, settings)
    for method in ("sendMessage", "sendVenue"):
        api.fail_next(method, error_code=400, description=REFUSED, retry_after=None)
    await drain(sender, open_db)
    assert api.bot_messages(RIDER) == []
    row = await only(open_db, "booking_accepted")
    assert row.failed_at is not None and row.sent_at is None
    assert row.parts_done == {"text": FAILED, "place": FAILED}


async def test_review_card_with_flood_control_between_photo_and_text(
    api: FakeBotAPI, open_db, sender: OutboxSender
) -> None:
    """A card too long for a caption is one card all the same (issue #16): the photo
    with a caption (the state and the buttons), the fields in a reply to it; a 429 on
    the reply posts neither twice, and the card is still recorded."""
    await seed_users(open_db)
    photo = api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    async with open_db() as db:
        revision = await listings.submit(
            db,
            merchant_id=MERCHANT,
            draft=factories.listing(chargers=3, photo_file_id=photo),
            moderation_chat_id=GROUP,
        )
    api.fail_next("sendMessage", error_code=429, retry_after=1)
    await drain(sender, open_db)
    photos = [m for m in api.bot_messages(GROUP) if "photo" in m]
    replies = texts(api, GROUP)
    assert len(photos) == 1 and "Waiting for review" in plain(photos[0])
    assert "in the reply below" in plain(photos[0]) and buttons(photos[0])  # approve / reject
    assert len(replies) == 1 and "Volt Café" in plain(replies[0])  # the fields, once
    assert replies[0]["reply_to_message"]["message_id"] == photos[0]["message_id"]
    async with open_db() as db:
        stored = await db.get(ListingRevision, revision.id)
        assert stored is not None
        assert (stored.card_chat_id, stored.card_message_id) == (GROUP, photos[0]["message_id"])
        assert stored.card_is_photo is True
    row = await only(open_db, "review_card")
    assert row.parts_done == {"card": "sent", "fields": "sent"} and row.sent_at is not None


async def test_qr_labels_each_once_a_refused_one_not_blocking(
    api: FakeBotAPI, open_db, sender: OutboxSender
) -> None:
    """A listing's labels (one PNG document per charger): a 400 on the first does not stop
    the others, and a 429 on a later one does not send the earlier ones again."""
    await seed_users(open_db)
    listing_id = await approved_listing(api, open_db, chargers=3)
    async with open_db() as db:
        charger_ids = (
            await db.scalars(
                select(Charger.id).where(Charger.listing_id == listing_id).order_by(Charger.id)
            )
        ).all()
    before = len(api.bot_messages(MERCHANT))
    async with open_db() as db, transaction(db):
        outbox.enqueue(db, MERCHANT, "qr_labels", listing_id=listing_id)
    api.fail_next("sendDocument", error_code=400, description=REFUSED, retry_after=None)
    api.fail_next("sendDocument", error_code=429, retry_after=1)  # then the second label
    await drain(sender, open_db)
    labels = api.bot_messages(MERCHANT)[before:]
    captions = [plain(m) for m in labels]
    assert len(labels) == 2 and all("document" in m for m in labels)
    assert "Charger 2" in captions[0] and "Charger 3" in captions[1]
    assert len(api.calls("sendDocument")) == 4  # 400, 429, label 2, label 3
    row = await only(open_db, "qr_labels")
    assert row.parts_done == {
        f"label:{charger_ids[0]}": FAILED,
        f"label:{charger_ids[1]}": "sent",
        f"label:{charger_ids[2]}": "sent",
    }
    assert row.sent_at is not None and row.last_error and REFUSED in row.last_error


def _fake_bucket(rate: float, burst: int) -> tuple[TokenBucket, list[float], list[float]]:
    clock = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    return TokenBucket(rate, burst, clock=lambda: clock[0], sleep=sleep), clock, slept


async def test_pacing_lets_a_small_burst_go_at_once_then_keeps_the_rate() -> None:
    """A token bucket (issue #17): the three messages of an order leave together; a
    long queue leaves at the rate, so no second holds more than burst + rate."""
    bucket, clock, slept = _fake_bucket(10, 3)
    for _ in range(3):
        await bucket.take()
    assert slept == []  # the burst: no wait
    sent_at = []
    for _ in range(10):
        await bucket.take()
        sent_at.append(clock[0])
    assert sent_at[-1] - sent_at[0] == pytest.approx(0.9)  # then 10 a second
    clock[0] += 60  # a quiet minute refills the bucket, no more than the burst
    for _ in range(3):
        await bucket.take()
    assert len(slept) == 10
    await bucket.take()
    assert len(slept) == 11


async def test_messages_to_people_are_claimed_before_card_edits(
    open_db: async_sessionmaker[AsyncSession],
) -> None:
    async with open_db() as db, transaction(db):
        outbox.enqueue(db, 1, outbox.OutboxKind.CARD_REFRESH, subject="booking", subject_id=1)
        outbox.enqueue(db, 2, outbox.OutboxKind.SESSION_STARTED, session_id=1)
        outbox.enqueue(db, 3, outbox.OutboxKind.CARD_REFRESH, subject="booking", subject_id=2)
        outbox.enqueue(db, 4, outbox.OutboxKind.BOOKING_ACCEPTED, booking_id=1)
    claimed = await outbox.claim_due(open_db)
    assert [m.chat_id for m in claimed] == [2, 4, 1, 3]
    assert all(outbox.claim_fresh(m) for m in claimed)  # the first part needs no renewal


async def test_card_edits_leave_tokens_for_messages_to_people() -> None:
    """Edits take a token only while EDITS_LEAVE stay: a message owed to someone finds
    one at once even during a long run of edits."""
    bucket, clock, _slept = _fake_bucket(10, 5)
    for _ in range(20):  # a run of edits
        await bucket.take(OutboxSender.EDITS_LEAVE)
    before = clock[0]
    for _ in range(OutboxSender.EDITS_LEAVE):  # an order to three chats
        await bucket.take()
    assert clock[0] == before  # no wait


async def test_chats_are_served_side_by_side_each_in_its_order(
    api: FakeBotAPI, open_db, settings: Settings, bot: Bot, sender: OutboxSender
) -> None:
    """What several chats are owed leaves at once (an order's three copies in one
    round trip, not three); one chat's parts and messages still go one by one, in
    their order."""
    await accepted_booking(api, open_db, settings)  # to the rider: text, then the map
    async with open_db() as db, transaction(db):
        booking_id = (await db.scalars(select(Booking.id))).one()
        outbox.enqueue(db, MERCHANT, outbox.OutboxKind.BOOKING_REQUEST, booking_id=booking_id)
    sending: dict[int, int] = {}
    most_in_one_chat = 0
    both = asyncio.Event()

    class Hold(BaseRequestMiddleware):
        """Holds each send until the other chat's is on its way too (at most 2 s)."""

        async def __call__(self, make_request, bot, method):  # type: ignore[no-untyped-def]
            nonlocal most_in_one_chat
            chat = int(method.chat_id)
            sending[chat] = sending.get(chat, 0) + 1
            most_in_one_chat = max(most_in_one_chat, sending[chat])
            if sum(1 for n in sending.values() if n) == 2:
                both.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both.wait(), 2)
            try:
                return await make_request(bot, method)
            finally:
                sending[chat] -= 1

    bot.session.middleware(Hold())
    await drain(sender, open_db)
    assert both.is_set()  # the rider's and the merchant's were sent at the same time
    assert most_in_one_chat == 1
    rider = api.bot_messages(RIDER)
    assert [("text" in m, "venue" in m) for m in rider] == [(True, False), (False, True)]
    assert "Booking accepted" in plain(rider[0])
    assert any("Booking request" in plain(m) for m in api.bot_messages(MERCHANT))
    async with open_db() as db:
        assert await outbox.pending_count(db) == 0
