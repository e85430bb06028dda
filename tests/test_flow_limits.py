"""Issue #12, items 5 and 14: no limits. Every list the bot sends (/pending,
/listings, /bookings, /sessions) is one message a page at a time, with ◀️ / ▶️,
tested with 200 items each through the real bot (the local Bot API server
enforces Telegram's 4096 characters and 64-byte button data); /sessions renders
its HTML. A user's open booking requests and a merchant's listings under review
are capped, with the count and the insert in one transaction."""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    Booking,
    BookingStatus,
    Charger,
    ChargingSession,
    Listing,
    ListingRevision,
    ListingStatus,
    OutboxMessage,
    RevisionStatus,
    SessionStatus,
    User,
)
from models.base import utcnow
from models.db import create_engine, create_session_factory
from services import bookings, listings
from services.bookings import BookingRules
from services.dto import BookingInfo, RevisionInfo
from services.errors import InvalidInput, NotAllowed
from services.tx import transaction
from tests import factories
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api

MERCHANT, RIDER, OTHER_RIDER = 1001, 2001, 2002
N = 200
ZONE = ZoneInfo("Asia/Shanghai")


def _shop(i: int) -> str:
    """A long name with characters HTML must escape, 64 characters like the wizard's cap."""
    return f"<Volt & Co> 充电站 number {i:03d} ".ljust(64, "x")


def _charger(listing_id: int, i: int) -> Charger:
    draft = factories.charger(plug_id=f"plug_{i}", device_kinds=["e_bike", "ev_car"])
    return Charger(
        listing_id=listing_id,
        position=i,
        method=draft.method or "",
        device_kinds=draft.device_kinds,
        device_models="",
        supply_kind="Smart socket",
        supply_model="S31",
        hours={str(d): [["00:00", "24:00"]] for d in range(7)},
        price_minor=250,
        price_unit="hour",
        currency="CNY",
        plug_driver="tasmota",
        plug_id=f"plug_{i}",
        qr_token=f"token-{i:04d}-{'q' * 20}",
        paired_at=utcnow(),  # bookable: its plug is paired
    )


async def _seed(open_db: async_sessionmaker[AsyncSession]) -> None:
    """200 listings under review (one merchant), an approved listing with 200
    chargers, 200 requests of one rider and 200 sessions charging now, written
    directly (no outbox rows: the point is the lists, not the notifications)."""
    now = utcnow()
    async with open_db() as db, transaction(db):
        for uid in (MERCHANT, RIDER, OTHER_RIDER, *ADMINS):
            if await db.get(User, uid) is None:
                db.add(User(id=uid, first_name=str(uid)))
        await db.flush()
        for i in range(N):
            listing = Listing(merchant_id=MERCHANT, status=ListingStatus.PENDING)
            db.add(listing)
            await db.flush()
            db.add(
                ListingRevision(
                    listing_id=listing.id,
                    number=1,
                    data=factories.listing(chargers=1, shop_name=_shop(i)).to_dict(),
                    status=RevisionStatus.PENDING,
                    submitted_at=now - timedelta(minutes=N - i),
                )
            )
        public = Listing(
            merchant_id=MERCHANT,
            status=ListingStatus.APPROVED,
            published=True,
            shop_name=_shop(999),
            photo_file_id="photo-1",
            latitude=31.23,
            longitude=121.47,
            address="1 Nanjing Rd",
        )
        db.add(public)
        await db.flush()
        chargers = [_charger(public.id, i) for i in range(N)]
        db.add_all(chargers)
        await db.flush()
        for i, charger in enumerate(chargers):
            start = now + timedelta(days=2, hours=i)
            db.add(
                Booking(
                    user_id=RIDER,
                    charger_id=charger.id,
                    merchant_id=MERCHANT,
                    status=BookingStatus.REQUESTED,
                    device_kind="e_bike",
                    device_model="",
                    start_at=start,
                    end_at=start + timedelta(hours=1),
                    price_minor=250,
                    price_unit="hour",
                    currency="CNY",
                    estimate_minor=250,
                    respond_by=now + timedelta(days=1),
                )
            )
            running = Booking(
                user_id=OTHER_RIDER,
                charger_id=charger.id,
                merchant_id=MERCHANT,
                status=BookingStatus.CHARGING,
                device_kind="e_bike",
                device_model="",
                start_at=now - timedelta(minutes=30),
                end_at=now + timedelta(hours=3),
                price_minor=250,
                price_unit="hour",
                currency="CNY",
                estimate_minor=None,
                respond_by=now - timedelta(hours=1),
            )
            db.add(running)
            await db.flush()
            db.add(
                ChargingSession(
                    booking_id=running.id,
                    charger_id=charger.id,
                    user_id=OTHER_RIDER,
                    merchant_id=MERCHANT,
                    status=SessionStatus.CHARGING,
                    plug_driver="tasmota",
                    plug_id=f"plug_{i}",
                    started_at=now - timedelta(minutes=20),
                    last_seen_at=now,
                )
            )


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "zh-hans")
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
async def bot_db(bot: BotHarness, database_url: str) -> AsyncIterator[async_sessionmaker]:
    """Database sessions on the bot's database."""
    engine = create_engine(database_url)  # migrated by the bot's start
    yield create_session_factory(engine)
    await engine.dispose()


def _fits(message: dict) -> None:
    """What Telegram would have accepted (the server refuses more anyway)."""
    assert len(plain(message)) <= 4096
    assert "<b>" not in plain(message) and "</b>" not in plain(message)  # rendered, not shown
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            assert len(button.get("callback_data", "").encode()) <= 64


def _first_item(api: FakeBotAPI, chat: int, message: dict) -> str:
    """The first "#<id>" button the message shows now (it may have been edited)."""
    current = next(m for m in api.history(chat) if m["message_id"] == message["message_id"])
    return next(b for row in buttons(current) for b in row if b.startswith("#"))


async def _walk(bot: BotHarness, chat: int, presser: int, first: dict, pattern: str) -> list[int]:
    """Every id (``pattern``'s group) on every page, going ▶️ to the end and one ◀️."""
    api = bot.api
    pages = int(re.search(r"page 1/(\d+)", plain(first)).group(1))  # type: ignore[union-attr]
    seen, message = [], first
    for number in range(1, pages + 1):
        _fits(message)
        assert f"page {number}/{pages}" in plain(message), plain(message)[:200]
        seen += [int(x) for x in re.findall(pattern, plain(message))]
        if number == pages:
            assert "Next ▶️" not in {b for row in buttons(message) for b in row}
            break
        answer = await bot.press(chat, presser, message, "Next ▶️")
        assert not answer.get("show_alert"), answer
        message = await api.wait_for_message(
            chat,
            lambda m, n=number + 1: (
                m["message_id"] == first["message_id"] and f"page {n}/{pages}" in plain(m)
            ),
        )
    await bot.press(chat, presser, message, "◀️ Previous")
    await api.wait_for_message(
        chat,
        lambda m: m["message_id"] == first["message_id"] and f"page {pages - 1}/" in plain(m),
    )
    return seen


async def test_pending_is_paged_with_200_items(bot: BotHarness, bot_db) -> None:
    api = bot.api
    await _seed(bot_db)
    # 200 listings under review, 10 a page, each with its card button
    first = await bot.say_in_group(ADMINS[0], "/pending", "Waiting for review: 200 (page 1/20)")
    ids = await _walk(bot, GROUP, ADMINS[0], first, r"#(\d+) <Volt")
    assert len(ids) == N == len(set(ids))
    assert len(api.bot_messages(GROUP)) == 1  # one message, edited


async def test_listings_are_paged_with_200_items(bot: BotHarness, bot_db) -> None:
    await _seed(bot_db)
    # the merchant's 200 listings (the public one, seeded without a submitted
    # version, is not among them)
    first = await bot.say(MERCHANT, "/listings", "Your listings (page 1/20)")
    ids = await _walk(bot, MERCHANT, MERCHANT, first, r"#(\d+) <Volt")
    assert len(ids) == N == len(set(ids))


async def test_bookings_are_paged_with_200_items(bot: BotHarness, bot_db) -> None:
    api = bot.api
    await _seed(bot_db)
    # the rider's 200 requests, then a booking opened from the list
    first = await bot.say(RIDER, "/bookings", "Your bookings (page 1/20)")
    ids = await _walk(bot, RIDER, RIDER, first, r"#(\d+) · ")
    assert len(ids) == N == len(set(ids))
    after = api.last_message_id(RIDER)
    opened = _first_item(api, RIDER, first)
    await bot.press(RIDER, RIDER, first, opened)
    detail = await bot.expect(RIDER, "Cancel this booking", after)
    assert f"Booking {opened}" in plain(detail)
    answer = await bot.press(RIDER, RIDER, detail, "Cancel this booking")
    assert answer.get("text") == "Booking cancelled.", answer

    # the merchant: their own listings' 400 bookings (requests and running ones)
    after = api.last_message_id(MERCHANT)
    api.send_text(MERCHANT, MERCHANT, "/bookings")
    first = await bot.expect(MERCHANT, "Bookings of your chargers (page 1/40)", after)
    assert not any("Your bookings" in plain(m) for m in api.bot_messages(MERCHANT))
    after = api.last_message_id(MERCHANT)
    await bot.press(MERCHANT, MERCHANT, first, _first_item(api, MERCHANT, first))
    detail = await bot.expect(MERCHANT, "Accept", after)
    answer = await bot.press(MERCHANT, MERCHANT, detail, "Accept")
    assert "Accepted" in (answer.get("text") or ""), answer


async def test_sessions_are_one_paged_message_with_200_items(bot: BotHarness, bot_db) -> None:
    api = bot.api
    await _seed(bot_db)
    # 200 sessions charging, 5 a page, HTML rendered, one message
    cursor = api.last_message_id(GROUP)
    first = await bot.say_in_group(ADMINS[0], "/sessions", "Charging now: 200 (page 1/40)")
    assert first["message_id"] == cursor + 2  # the command and one answer, nothing more
    assert any(e["type"] == "bold" for e in first.get("entities", []))
    ids = await _walk(bot, GROUP, ADMINS[0], first, r"User (\d+)")
    assert len(ids) == N and set(ids) == {OTHER_RIDER}
    # a session's Close button still works from the list
    after = api.last_message_id(GROUP)
    await bot.press(GROUP, ADMINS[0], first, "Close #")
    await bot.expect(GROUP, "Stop charging now?", after)


# -- caps ---------------------------------------------------------------------------------


async def _approved_charger(open_db) -> int:
    async with open_db() as db:
        async with transaction(db):
            for uid in (MERCHANT, RIDER, OTHER_RIDER):
                if await db.get(User, uid) is None:
                    db.add(User(id=uid, first_name=str(uid)))
        draft = factories.listing(chargers=1)
        draft.chargers[0].hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=GROUP
        )
        await listings.approve(
            db, revision_id=revision.id, admin_id=ADMINS[0], moderation_chat_id=GROUP
        )
        return (await db.scalars(select(Charger.id))).one()


async def _request(open_db, charger_id: int, hours_ahead: int, rules: BookingRules) -> Booking:
    start = utcnow().replace(second=0, microsecond=0) + timedelta(hours=hours_ahead)
    async with open_db() as db:
        return await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=start + timedelta(hours=1),
            rules=rules,
        )


async def test_open_requests_are_capped_and_a_repeat_is_refused(open_db) -> None:
    rules = BookingRules(zone=ZONE, max_open_requests=3)
    charger_id = await _approved_charger(open_db)
    first = await _request(open_db, charger_id, 2, rules)
    with pytest.raises(InvalidInput) as refused:  # the same window again
        await _request(open_db, charger_id, 2, rules)
    assert refused.value.key == "err.booking_repeat" and refused.value.params["id"] == first.id
    for hours in (4, 6):
        await _request(open_db, charger_id, hours, rules)
    with pytest.raises(NotAllowed) as refused:
        await _request(open_db, charger_id, 8, rules)
    assert refused.value.key == "err.too_many_requests"
    async with open_db() as db:  # an answer frees a place
        await bookings.reject(db, booking_id=first.id, merchant_id=MERCHANT, reason="full")
    await _request(open_db, charger_id, 8, rules)
    async with open_db() as db:
        waiting = await db.scalar(
            select(func.count()).select_from(Booking).where(Booking.user_id == RIDER)
        )
        told = await db.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "booking_request")
        )
    assert waiting == 4 and told == 4  # the merchant heard of each request once


async def test_requests_at_once_cannot_pass_the_cap_together(open_db) -> None:
    """Five requests at the same moment with one place left: exactly one goes in
    (the count and the insert are one transaction, serialised per user)."""
    rules = BookingRules(zone=ZONE, max_open_requests=3)
    charger_id = await _approved_charger(open_db)
    for hours in (2, 4):
        await _request(open_db, charger_id, hours, rules)
    results = await asyncio.gather(
        *(_request(open_db, charger_id, 10 + 2 * k, rules) for k in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, BookingInfo) for r in results) == 1, results
    assert all(isinstance(r, (BookingInfo, NotAllowed)) for r in results), results


async def test_listings_under_review_are_capped(open_db) -> None:
    async with open_db() as db, transaction(db):
        db.add(User(id=MERCHANT, first_name="Mia"))

    async def submit(listing_id: int | None = None, key: str | None = None) -> RevisionInfo:
        async with open_db() as db:
            return await listings.submit(
                db,
                merchant_id=MERCHANT,
                draft=factories.listing(chargers=1),
                moderation_chat_id=GROUP,
                listing_id=listing_id,
                submission_key=key,
                max_under_review=3,
            )

    first = await submit(key="a" * 32)
    for _ in range(2):
        await submit()
    with pytest.raises(InvalidInput) as refused:
        await submit()
    assert refused.value.key == "err.too_many_under_review"
    assert (await submit(key="a" * 32)).id == first.id  # a double press of the first
    await submit(listing_id=first.listing_id)  # an edit of one under review replaces it
    results = await asyncio.gather(*(submit() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, InvalidInput) for r in results), results
    async with open_db() as db:
        under_review = await db.scalar(
            select(func.count()).select_from(Listing).where(Listing.status == "pending")
        )
    assert under_review == 3


async def test_a_capped_user_is_told_at_book_and_the_merchant_hears_nothing(
    bot: BotHarness, bot_db
) -> None:
    """Through the bot: with three requests waiting, Book says so at once."""
    api = bot.api
    photo = api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    await api.wait_idle()
    charger_id = await _approved_charger(bot_db)
    async with bot_db() as db:
        await db.execute(
            Listing.__table__.update().values(photo_file_id=photo)  # type: ignore[attr-defined]
        )
        await db.commit()
    rules = BookingRules(zone=bot.settings.zone, max_open_requests=3)
    for hours in (2, 4, 6):
        await _request(bot_db, charger_id, hours, rules)
    await bot.say(RIDER, "/find", "Where are you")
    after = api.last_message_id(RIDER)
    api.send_location(RIDER, RIDER, 31.2310, 121.4740)
    results = await bot.expect(RIDER, "near you (page", after)
    after = api.last_message_id(RIDER)
    await bot.press(RIDER, RIDER, results, "1. Volt Café")
    card = await bot.expect(RIDER, "Book charger 1", after)
    answer = await bot.press(RIDER, RIDER, card, "Book charger 1")
    assert answer.get("show_alert") and "3 booking requests waiting" in answer["text"], answer


async def test_the_local_bot_api_server_enforces_telegrams_limits(api: FakeBotAPI) -> None:
    """What the paging tests rely on: the server refuses what Telegram refuses."""
    from aiogram import Bot
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramBadRequest
    from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

    def keyboard(data: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="x", callback_data=data)]]
        )

    http = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    bot = Bot(api.token, session=http, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        # text: 4096 characters after entity parsing (tags do not count)
        sent = await bot.send_message(RIDER, "<b>" + "界" * 4096 + "</b>")
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bot.send_message(RIDER, "x" * 4097)
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bot.edit_message_text("y" * 4097, chat_id=RIDER, message_id=sent.message_id)
        # captions: 1024
        photo = api.send_photo(RIDER, RIDER)["photo"][-1]["file_id"]
        await bot.send_photo(RIDER, photo, caption="c" * 1024)
        with pytest.raises(TelegramBadRequest, match="caption is too long"):
            await bot.send_photo(RIDER, photo, caption="c" * 1025)
        with pytest.raises(TelegramBadRequest, match="caption is too long"):
            await bot.send_photo(
                RIDER, BufferedInputFile(api.file_bytes(photo), "p.png"), caption="c" * 1025
            )
        # callback data: 64 bytes (not characters)
        await bot.send_message(RIDER, "ok", reply_markup=keyboard("d" * 64))
        for data in ("d" * 65, "界" * 22):
            with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
                await bot.send_message(RIDER, "no", reply_markup=keyboard(data))
    finally:
        await bot.session.close()
