"""Issue #12, item 1: a refusal raised inside a write rolls its transaction back;
the person must not be locked out afterwards (the in-process user cache held the
ORM row, which the rollback left expired and detached, so every later update
failed with "Sorry, something went wrong" until a restart)."""

from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy.exc import StatementError

from bot.fsm_storage import SqlStorage
from models import User
from services import users
from services.errors import NotFound
from services.tx import transaction
from tests.botapi import FakeBotAPI
from tests.harness import BotHarness, start_api

ANN = 3001


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((ANN, "Ann", "en"))
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def _refused_accept(bot: BotHarness) -> None:
    """A stale Accept (a booking that does not exist): refused inside its write."""
    message = bot.api.bot_messages(ANN)[-1]
    query = bot.api.press(ANN, ANN, message["message_id"], "bg:accept:424242:")
    answer = await bot.api.wait_for_callback_answer(query)
    assert answer.get("text") == "That booking does not exist.", answer


async def test_a_refusal_as_the_first_action_after_a_restart_locks_nobody_out(
    bot: BotHarness,
) -> None:
    await bot.say(ANN, "/help", "ChargeShare")
    await bot.restart()  # the cache is empty: the refusal's session loads the row
    await _refused_accept(bot)
    await bot.say(ANN, "/help", "ChargeShare")
    await bot.say(ANN, "/language", "Choose")  # and again, from the cache


async def test_a_refusal_right_after_a_name_change_locks_nobody_out(bot: BotHarness) -> None:
    await bot.say(ANN, "/help", "ChargeShare")
    bot.api.add_user(ANN, "Annie", language_code="en", username="annie")  # renamed in Telegram
    await _refused_accept(bot)  # the profile's update and the refusal share the update
    await bot.say(ANN, "/help", "ChargeShare")
    # the choice of language after such a refusal is kept and used
    await _refused_accept(bot)
    message = await bot.say(ANN, "/language", "Choose")
    await bot.press(ANN, ANN, message, "简体中文")
    await bot.say(ANN, "/help", "查找附近")


# -- the caches themselves, on both databases ------------------------------------------


async def test_the_user_cache_holds_plain_values_that_a_rollback_cannot_expire(
    open_db,
) -> None:
    known = users.KnownUsers(10)
    async with open_db() as db:
        profile = await users.touch(db, 7, "Ann", None, "en", known)
        with pytest.raises(NotFound):
            async with transaction(db):  # a refusal inside a write, same session
                raise NotFound("err.booking_not_found")
        assert profile == users.UserProfile(7, "Ann", None, "en", None)
    async with open_db() as db:
        assert await users.touch(db, 7, "Ann", None, "en", known) == profile
        chosen = await users.set_language(db, profile, "zh", known)
    assert known.get(7) == chosen and chosen.language == "zh"
    async with open_db() as db:  # a rename keeps the stored choice
        renamed = await users.touch(db, 7, "Annie", "annie", "en", known)
    assert renamed == users.UserProfile(7, "Annie", "annie", "en", "zh")
    assert not isinstance(known.get(7), User)


async def test_a_failed_conversation_write_leaves_the_cache_as_the_database(open_db) -> None:
    """The FSM storage's cache copies values (never rows) and forgets an entry
    before writing it, so a write that fails leaves nothing stale behind."""
    storage = SqlStorage(open_db)
    key = StorageKey(bot_id=1, chat_id=8, user_id=8)
    await storage.set_state(key, "Booking:when")
    await storage.set_data(key, {"charger_id": 1})
    data = await storage.get_data(key)
    data["charger_id"] = 99  # a caller's copy: changing it changes nothing stored
    assert await storage.get_data(key) == {"charger_id": 1}
    with pytest.raises(StatementError):  # not JSON: the write fails, rolled back
        await storage.set_data(key, {"charger_id": 2, "bad": object()})
    assert await storage.get_data(key) == {"charger_id": 1}
    assert await storage.get_state(key) == "Booking:when"
    assert await SqlStorage(open_db).get_data(key) == {"charger_id": 1}


async def test_two_first_updates_of_a_new_user_at_once_both_get_their_profile(open_db) -> None:
    """A new user's first message in the group and in private arrive together: two
    updates under two locks both find no row; the one that loses the insert reads
    the winner's row instead of failing the update (seen on PostgreSQL)."""
    import asyncio

    async def first_update(user_id: int, name: str) -> users.UserProfile:
        async with open_db() as db:
            return await users.touch(db, user_id, name, None, "en")

    for user_id in range(5001, 5011):  # a race: ten new users, two updates each
        one, two = await asyncio.gather(
            first_update(user_id, "Lin"), first_update(user_id, "Lin L.")
        )
        assert one.id == two.id == user_id
    async with open_db() as db:
        row = await db.get(User, 5001)
        assert row is not None and row.first_name in ("Lin", "Lin L.")
