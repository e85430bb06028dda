"""The shortcuts that issue #7's profiling put in (docs/benchmarks.md): each must
give the same answers as the long way, on SQLite and PostgreSQL, and fall back to
it when what it remembers is not true any more."""

import asyncio
import gc
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from aiogram.methods import SendMessage
from aiogram.methods.base import Response
from aiogram.types import Message
from sqlalchemy import delete, event, insert, select

from bot.fsm_storage import SqlStorage
from bot.request_middlewares import KeepResponseModels
from models import FsmRecord, User
from models.db import create_engine, create_session_factory
from services import users
from services.tx import step, transaction

KEY = StorageKey(bot_id=1, chat_id=10, user_id=10)
ROW = DefaultKeyBuilder(with_destiny=True).build(KEY)  # as SqlStorage names the row


@contextmanager
def statements(engine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs (BEGIN and
    COMMIT, which SQLite's engine sends on the driver, not counted)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def stored(open_db) -> tuple[str | None, dict] | None:
    async with open_db() as db:
        record = await db.get(FsmRecord, ROW)
        return None if record is None else (record.state, record.data)


async def test_a_conversation_step_is_one_statement_when_the_state_is_known(
    engine, open_db
) -> None:
    storage = SqlStorage(open_db)
    assert await storage.get_state(KEY) is None  # aiogram reads it for every update
    with statements(engine) as seen:
        await storage.set_state(KEY, "Booking:kind")
        await storage.set_data(KEY, {"listing": 7})
        await storage.set_data(KEY, {"listing": 7})  # the same again: nothing to write
        await storage.set_state(KEY, "Booking:model")
    assert seen == ["INSERT", "UPDATE", "UPDATE"]
    assert await stored(open_db) == ("Booking:model", {"listing": 7})
    # a new storage (a restart) reads the same from the database
    fresh = SqlStorage(open_db)
    assert await fresh.get_state(KEY) == "Booking:model"
    assert await fresh.get_data(KEY) == {"listing": 7}
    with statements(engine) as seen:
        await storage.set_state(KEY, None)
        await storage.set_data(KEY, {})  # aiogram's clear(): nothing left, the row goes
    assert seen == ["UPDATE", "DELETE"]
    assert await stored(open_db) is None


async def test_the_long_way_is_taken_when_the_database_disagrees(engine, open_db) -> None:
    storage = SqlStorage(open_db)
    assert await storage.get_state(KEY) is None  # remembered: no row
    async with open_db() as db, transaction(db):  # a row behind its back
        await db.execute(insert(FsmRecord).values(key=ROW, state="Old", data={"kept": 1}))
    await storage.set_state(KEY, "New")  # the INSERT fails; read, then write
    assert await stored(open_db) == ("New", {"kept": 1})
    assert await storage.get_data(KEY) == {"kept": 1}

    async with open_db() as db, transaction(db):  # and gone behind its back
        await db.execute(delete(FsmRecord))
    await storage.set_data(KEY, {"again": 2})  # the UPDATE finds no row; write anew
    assert await stored(open_db) == (None, {"again": 2})


async def test_without_a_cache_every_write_reads_first(engine, open_db) -> None:
    storage = SqlStorage(open_db, cache_size=0)  # several webhook instances
    await storage.set_state(KEY, "A")
    with statements(engine) as seen:
        await storage.set_state(KEY, "B")
    assert seen == ["SELECT", "UPDATE"]
    assert await storage.get_state(KEY) == "B"


async def test_a_known_user_costs_no_query_and_follows_their_changes(engine, open_db) -> None:
    known = users.KnownUsers(10)
    async with open_db() as db:
        first = await users.touch(db, 5, "Ann", None, "en", known)
    with statements(engine) as seen:
        async with open_db() as db:
            again = await users.touch(db, 5, "Ann", None, "en", known)
    assert seen == [] and again is first
    async with open_db() as db:
        await users.set_language(db, again, "zh", known)
        renamed = await users.touch(db, 5, "Anna", "ann", "en", known)  # a new profile
    assert (renamed.language, renamed.first_name) == ("zh", "Anna")
    async with open_db() as db:
        row = await db.get(User, 5)
        assert (row.language, row.first_name, row.username) == ("zh", "Anna", "ann")
    # off (size 0): every update reads the row
    off = users.KnownUsers(0)
    for _ in range(2):
        with statements(engine) as seen:
            async with open_db() as db:
                await users.touch(db, 5, "Anna", "ann", "en", off)
        assert seen == ["SELECT"]


async def test_a_writer_waits_for_another_process_lock_without_freezing_the_loop(
    tmp_path,
) -> None:
    """Another process (here a plain sqlite3 connection) holds SQLite's write lock:
    our transaction waits for it on the event loop, which keeps running, and goes
    through as soon as the lock is released."""
    path = tmp_path / "x.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(User.metadata.create_all)
        open_db = create_session_factory(engine)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        async def write() -> float:
            async with open_db() as db, transaction(db):
                db.add(User(id=1, first_name="x"))
            return time.monotonic()

        running = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writing.done()
        released = time.monotonic()
        other.execute("COMMIT")
        written = await asyncio.wait_for(writing, 5)
        running.cancel()
        assert ticks >= 20  # the loop ran all along (0.3 s / 5 ms = 60 at best)
        assert written - released < 0.1  # retried within 10 ms steps
        async with open_db() as db:
            assert (await db.scalars(select(User.id))).all() == [1]
        other.close()
    finally:
        await engine.dispose()


async def test_writers_of_one_process_queue_on_one_gate_whatever_the_engine(tmp_path) -> None:
    """Two engines on one file (the tests' and the bot's): a unit of work that
    awaits something while it holds the write lock does not make the other one
    fail or freeze the loop."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'y.db'}"
    first, second = create_engine(url), create_engine(url)
    try:
        async with first.begin() as conn:
            await conn.run_sync(User.metadata.create_all)
        order: list[str] = []
        holding = asyncio.Event()

        async def slow() -> None:
            async with create_session_factory(first)() as db, transaction(db):
                db.add(User(id=1, first_name="slow"))
                await db.flush()
                order.append("slow holds the lock")
                holding.set()
                await asyncio.sleep(0.2)  # holds it a while: the quick one must wait
            order.append("slow done")

        async def quick() -> None:
            await holding.wait()
            async with create_session_factory(second)() as db, transaction(db):
                db.add(User(id=2, first_name="quick"))
            order.append("quick done")

        await asyncio.gather(slow(), quick())
        assert order == ["slow holds the lock", "slow done", "quick done"]
    finally:
        await first.dispose()
        await second.dispose()


async def test_aiogram_response_models_survive_garbage_collection() -> None:
    keep = KeepResponseModels()
    method = SendMessage(chat_id=1, text="hi")

    async def make_request(_bot, _method):
        return None

    await keep(make_request, None, method)  # type: ignore[arg-type]
    kept = Response[Message]
    gc.collect()
    assert Response[Message] is kept  # not rebuilt (about 7 ms each) after a collection


async def test_magic_and_state_filters_are_awaited_in_place_with_the_same_results(
    monkeypatch,
) -> None:
    """Wrapped in Magic(...) and StateFilter(...), a router's own filter and a
    handler's decide as the bare ones would, ``.as_`` still hands the handler its
    argument, and no check goes to a thread."""
    from datetime import datetime

    from aiogram import Bot, Dispatcher, F, Router
    from aiogram.filters import StateFilter
    from aiogram.fsm.state import State, StatesGroup
    from aiogram.types import Chat, Update
    from aiogram.types import Message as TgMessage
    from aiogram.types import User as TgUser

    from handlers.filters import Magic

    class Form(StatesGroup):
        step = State()

    router = Router()
    router.message.filter(Magic(F.chat.type == "private"))  # a router-level magic filter
    seen: list[str] = []

    @router.message(
        StateFilter(Form.step), Magic(F.text.startswith("go ")), Magic(F.text.as_("text"))
    )
    async def step(message: TgMessage, text: str) -> None:
        seen.append(text)

    dp = Dispatcher()
    dp.include_router(router)

    async def no_threads(*_args, **_kwargs):
        raise AssertionError("a filter went to a thread")

    monkeypatch.setattr("asyncio.to_thread", no_threads)
    bot = Bot("42:TEST")
    await dp.fsm.get_context(bot, chat_id=7, user_id=7).set_state(Form.step)

    def update(n: int, text: str, chat_type: str = "private") -> Update:
        return Update(
            update_id=n,
            message=TgMessage(
                message_id=n,
                date=datetime.now(),
                chat=Chat(id=7, type=chat_type),
                from_user=TgUser(id=7, is_bot=False, first_name="A"),
                text=text,
            ),
        )

    await dp.feed_update(bot, update(1, "go home"))
    await dp.feed_update(bot, update(2, "stay"))  # the magic filter says no
    await dp.feed_update(bot, update(3, "go group", "group"))  # the router's filter says no
    await dp.fsm.get_context(bot, chat_id=7, user_id=7).set_state(None)
    await dp.feed_update(bot, update(4, "go later"))  # the state filter says no
    assert seen == ["go home"]
    await bot.session.close()


async def test_a_step_writes_its_conversation_once_at_the_end_of_the_update(
    engine, open_db
) -> None:
    storage = SqlStorage(open_db)
    await storage.set_state(KEY, "Booking:kind")  # known from now on
    with statements(engine) as seen:
        async with storage.one_write_per_update():
            await storage.set_data(KEY, {"kind": "e_bike"})  # aiogram's update_data
            await storage.set_state(KEY, "Booking:model")
            # the update itself (and its next one) reads what it wrote
            assert await storage.get_state(KEY) == "Booking:model"
            assert seen == []
    assert seen == ["UPDATE"]
    assert await stored(open_db) == ("Booking:model", {"kind": "e_bike"})

    # written also when the step fails after its writes; a clear() leaves no row
    with statements(engine) as seen:
        try:
            async with storage.one_write_per_update():
                await storage.set_state(KEY, None)
                await storage.set_data(KEY, {})
                raise RuntimeError("the handler failed")
        except RuntimeError:
            pass
    assert seen == ["DELETE"]
    assert await stored(open_db) is None

    # a row changed behind the cache's back: the long way at the end
    async with storage.one_write_per_update():
        await storage.set_state(KEY, "A")
        async with open_db() as db, transaction(db):
            await db.execute(insert(FsmRecord).values(key=ROW, state="Other", data={"x": 1}))
    assert await stored(open_db) == ("A", {"x": 1})


@contextmanager
def transactions(engine) -> Iterator[list[str]]:
    """The transactions the engine begins while the block runs."""
    begun: list[str] = []

    def record(_conn) -> None:
        begun.append("BEGIN")

    event.listen(engine.sync_engine, "begin", record)
    try:
        yield begun
    finally:
        event.remove(engine.sync_engine, "begin", record)


async def test_a_step_is_one_transaction_with_its_conversation_state(engine, open_db) -> None:
    storage = SqlStorage(open_db)
    await storage.set_state(KEY, "Booking:kind")  # known from now on
    with statements(engine) as seen, transactions(engine) as begun:
        async with storage.one_write_per_update(), open_db() as db:
            async with step(db):
                assert await db.get(User, 5) is None  # the step's read
                async with transaction(db):  # a service's unit joins the step's
                    db.add(User(id=5, first_name="A"))
                await storage.set_data(KEY, {"kind": "e_bike"})
                await storage.set_state(KEY, "Booking:model")
            assert await stored(open_db) == ("Booking:model", {"kind": "e_bike"})
    # the read, the domain write and the conversation's upsert; nothing at the end
    assert seen == ["SELECT", "INSERT", "INSERT", "SELECT"]  # (the last: stored())
    assert begun == ["BEGIN", "BEGIN"]

    # a step that fails rolls back, the state it set included: the conversation stays
    # where it was
    try:
        async with storage.one_write_per_update(), open_db() as db, step(db):
            await storage.set_state(KEY, "Booking:when")
            db.add(User(id=6, first_name="B"))
            await db.flush()
            raise RuntimeError("refused")
    except RuntimeError:
        pass
    assert await stored(open_db) == ("Booking:model", {"kind": "e_bike"})
    assert await storage.get_state(KEY) == "Booking:model"
    async with open_db() as db:
        assert await db.get(User, 6) is None

    # a row gone behind the cache's back: the step's upsert writes it whole; a
    # conversation cleared in a step is deleted there
    async with open_db() as db, transaction(db):
        await db.execute(delete(FsmRecord).where(FsmRecord.key == ROW))
    async with storage.one_write_per_update(), open_db() as db, step(db):
        await storage.set_state(KEY, "Booking:confirm")
    assert await stored(open_db) == ("Booking:confirm", {"kind": "e_bike"})
    async with storage.one_write_per_update(), open_db() as db, step(db):
        await storage.set_state(KEY, None)
        await storage.set_data(KEY, {})
    assert await stored(open_db) is None
    assert await storage.get_state(KEY) is None


async def test_a_step_that_fails_leaves_the_conversation_where_it_was(engine, open_db) -> None:
    storage = SqlStorage(open_db)
    await storage.set_state(KEY, "Booking:model")
    try:
        async with storage.one_write_per_update(), open_db() as db:
            await storage.set_data(KEY, {"model": "G5"})  # before the step: kept
            async with step(db):
                await storage.set_state(KEY, "Booking:confirm")  # inside: undone
                await storage.set_data(KEY, {"model": "G5", "start": "10:00"})
                raise RuntimeError("the commit failed")
    except RuntimeError:
        pass
    assert await storage.get_state(KEY) == "Booking:model"
    assert await storage.get_data(KEY) == {"model": "G5"}
    assert await stored(open_db) == ("Booking:model", {"model": "G5"})


async def test_a_step_with_no_cache_reads_first_and_still_writes_in_its_transaction(
    engine, open_db
) -> None:
    # webhook mode keeps no copy of the conversations (several instances write them):
    # a write inside a step must not open a unit of its own (on SQLite it would wait
    # for the write lock the step holds)
    storage = SqlStorage(open_db, cache_size=0)
    await storage.set_state(KEY, "Booking:kind")
    with transactions(engine) as begun:
        async with storage.one_write_per_update(), open_db() as db:
            async with asyncio.timeout(10), step(db):
                await storage.set_state(KEY, "Booking:model")
                await storage.update_data(KEY, {"kind": "e_bike"})
                # the update reads what it wrote, with no copy kept
                assert await storage.get_state(KEY) == "Booking:model"
            begun_in_update = len(begun)
    # the read of the row (no write lock), then the step's one transaction
    assert begun_in_update == 2
    assert await stored(open_db) == ("Booking:model", {"kind": "e_bike"})


async def test_a_second_unit_inside_a_step_is_refused_not_left_waiting(engine, open_db) -> None:
    async with open_db() as db, open_db() as other, step(db):
        if engine.dialect.name == "sqlite":  # it would wait for the gate the step holds
            with pytest.raises(RuntimeError):
                async with asyncio.timeout(10), transaction(other):
                    pass
        else:  # row locks: no gate to wait on
            async with transaction(other):
                pass
