"""Flood control on the bot's own replies (issue #12, item 11): every Bot API call
waits out a 429's ``retry_after`` (bounded), and a reply that follows a committed
change reaches the person even when Telegram refuses it past that bound (then
through the outbox). The real bot against the local Bot API server, plus units."""

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import ReplyKeyboardRemove
from sqlalchemy import select

from bot.request_middlewares import WaitOutFloodControl
from models import OutboxMessage
from models.db import create_engine, create_session_factory
from services.outbox import OutboxKind
from tests.botapi import FakeBotAPI, plain
from tests.harness import BotHarness, start_api
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER, book, seed_listing
from ui.owed import as_payload

SORRY = "something went wrong"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER, "Ravi", "en"), (OTHER_RIDER, "Olga", "en")
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


def texts(api: FakeBotAPI, chat: int, needle: str) -> int:
    return sum(1 for message in api.bot_messages(chat) if needle in plain(message))


async def test_a_429_before_the_find_prompt_is_waited_out(bot: BotHarness) -> None:
    bot.api.fail_next("sendMessage", retry_after=1, chat_id=RIDER)
    started = time.monotonic()
    await bot.say(RIDER, "/find", "Where are you")
    assert time.monotonic() - started >= 1.0  # not before Telegram's retry_after
    assert texts(bot.api, RIDER, SORRY) == 0
    assert texts(bot.api, RIDER, "Where are you") == 1


async def _confirm(bot: BotHarness, database_url: str) -> dict[str, Any]:
    await seed_listing(bot, database_url)
    summary = await book(bot, RIDER, "tomorrow 09:00-11:00", "Confirm booking")
    return summary


async def test_a_429_at_confirm_still_tells_the_rider(bot: BotHarness, database_url: str) -> None:
    summary = await _confirm(bot, database_url)
    api = bot.api
    after, merchant_after = api.last_message_id(RIDER), api.last_message_id(MERCHANT)
    api.fail_next("sendMessage", retry_after=1, chat_id=RIDER)
    answer = await bot.press(RIDER, RIDER, summary, "Confirm booking")
    assert "Request sent" in answer["text"]
    await bot.expect(RIDER, "Booking #1 is requested", after, timeout=10)
    await bot.expect(MERCHANT, "New booking request", merchant_after)
    await api.wait_idle()
    assert texts(api, RIDER, "Booking #1 is requested") == 1
    assert texts(api, RIDER, SORRY) == 0


async def test_a_reply_refused_past_the_bounded_wait_comes_through_the_outbox(
    bot: BotHarness, database_url: str
) -> None:
    summary = await _confirm(bot, database_url)
    api = bot.api
    after = api.last_message_id(RIDER)
    # refused on the first try and on both retries: the handler gives up waiting
    api.fail_next("sendMessage", retry_after=1, times=3, chat_id=RIDER)
    # and the buttons' removal after it too
    api.fail_next("editMessageReplyMarkup", retry_after=1, times=3, chat_id=RIDER)
    await bot.press(RIDER, RIDER, summary, "Confirm booking")
    await bot.expect(RIDER, "Booking #1 is requested", after, timeout=15)
    await api.wait_for_message(
        RIDER,
        lambda m: m["message_id"] == summary["message_id"] and not m.get("reply_markup"),
        timeout=15,
    )
    await api.wait_idle()
    assert texts(api, RIDER, "Booking #1 is requested") == 1
    assert texts(api, RIDER, SORRY) == 0
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        kept = (
            await db.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.OWED_CALL)
            )
        ).all()
    await engine.dispose()
    assert sorted(row.payload["method"] for row in kept) == [
        "EditMessageReplyMarkup",
        "SendMessage",
    ]
    assert all(row.sent_at is not None for row in kept)


# -- units ------------------------------------------------------------------------------


class _Refusing:
    """A request chain that answers 429 ``times`` times, then succeeds."""

    def __init__(self, times: int, retry_after: int) -> None:
        self.calls = 0
        self.times = times
        self.retry_after = retry_after

    async def __call__(self, bot: Any, method: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise TelegramRetryAfter(method, "Too Many Requests", self.retry_after)
        return True


async def test_the_wait_is_bounded() -> None:
    method = SendMessage(chat_id=1, text="x")
    middleware = WaitOutFloodControl(retries=2, max_wait=10)
    chain = _Refusing(times=1, retry_after=60)  # longer than a handler may wait
    started = time.monotonic()
    with pytest.raises(TelegramRetryAfter):
        await middleware(chain, None, method)  # type: ignore[arg-type]
    assert chain.calls == 1 and time.monotonic() - started < 1
    chain = _Refusing(times=5, retry_after=0)  # refused again and again: gives up
    with pytest.raises(TelegramRetryAfter):
        await middleware(chain, None, method)  # type: ignore[arg-type]
    assert chain.calls == 3
    chain = _Refusing(times=2, retry_after=0)
    assert await middleware(chain, None, method) is True  # type: ignore[arg-type]


def test_a_kept_call_is_the_call_as_made(bot_defaults: Any) -> None:
    payload = as_payload(
        bot_defaults, SendMessage(chat_id=7, text="<b>hi</b>", reply_markup=ReplyKeyboardRemove())
    )
    assert payload == {
        "method": "SendMessage",
        "params": {
            "chat_id": 7,
            "text": "<b>hi</b>",
            "parse_mode": "HTML",  # the bot's default, resolved when kept
            "reply_markup": {"remove_keyboard": True},
        },
    }
    # an answer to a callback query expires: not kept
    assert as_payload(bot_defaults, AnswerCallbackQuery(callback_query_id="1")) is None


@pytest.fixture
def bot_defaults() -> Any:
    from aiogram import Bot
    from aiogram.client.default import DefaultBotProperties
    from aiogram.enums import ParseMode

    return Bot("42:TEST", default=DefaultBotProperties(parse_mode=ParseMode.HTML))
