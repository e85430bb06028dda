"""What the bot assumes of aiogram's filter dispatching and of aiosqlite's private
internals (issue #17). pyproject.toml pins both below their next minor release;
before raising a bound, these tests must pass on the new release: each fails,
rather than the bot slowing down or hanging, when an assumption breaks.

aiogram: a filter that is an ``aiogram.filters.Filter`` (async ``__call__``) is
awaited in place; any other callable, a magic filter (``F.text == ...``) and a bare
``State`` included, goes through ``asyncio.to_thread`` on every check, and
``FilterObject.awaitable`` says which. The routers use only the former
(handlers/filters.py ``Magic``, aiogram's ``StateFilter``); the dispatcher test
fails on a filter that would be handed to a thread.

aiosqlite (models/db.py, InlineConnection): ``Connection(connector,
iter_chunk_size)`` makes a ``_tx`` queue and a ``_thread`` it does not start;
every call (``_execute``, ``_connect``, ``stop``, and SQLAlchemy's
``isolation_level`` setter) goes through ``_tx.put_nowait((future, function))``;
``_connect()`` opens the connection; ``_conn`` is the sqlite3 connection.
"""

import asyncio
import inspect
import sqlite3
import threading
from types import SimpleNamespace
from typing import Any

import aiosqlite
import pytest
from aiogram import Dispatcher, F, Router
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.filters import StateFilter
from aiogram.fsm.state import State, StatesGroup
from sqlalchemy import text

from bot.factory import create_dispatcher
from bot.settings import Settings
from handlers.filters import Magic
from models.db import InlineConnection, create_engine, create_session_factory

TIMEOUT_S = 10  # a call that would wait for a worker thread that never runs fails here


def _routers(router: Router) -> list[Router]:
    return [router, *(r for sub in router.sub_routers for r in _routers(sub))]


def _filters(dp: Dispatcher) -> list[tuple[str, FilterObject]]:
    """Every filter of every observer under ``dp``, router-level ones included."""
    found: list[tuple[str, FilterObject]] = []
    for router in _routers(dp):
        for name, observer in router.observers.items():
            if not isinstance(observer, TelegramEventObserver):
                continue
            # where observer.filter(...) puts a router's own filters: aiogram has no
            # public accessor for them
            own = observer._handler
            assert isinstance(own, HandlerObject)
            for handler in [own, *observer.handlers]:
                where = f"{router.name}.{name} {getattr(handler.callback, '__qualname__', '?')}"
                found.extend((where, f) for f in handler.filters or ())
    return found


@pytest.fixture
async def dispatcher(tmp_path) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, bot_token="42:TEST", moderation_chat_id=-1001
    )
    try:
        yield create_dispatcher(settings, create_session_factory(engine))
    finally:
        await engine.dispose()


async def test_no_filter_or_handler_of_the_bots_dispatcher_goes_to_a_thread(dispatcher) -> None:
    """aiogram awaits every filter and handler of the built dispatcher in place: none
    is a sync callable (a bare ``F.text == ...`` or ``State``) it would hand to a
    thread. Wrap such a filter in ``Magic(...)`` or ``StateFilter(...)``."""
    filters = _filters(dispatcher)
    assert len(filters) > 100  # the walk reached the routers' filters, their own too
    sync = [
        f"{where}: {f.magic if f.magic is not None else f.callback!r}"
        for where, f in filters
        if not f.awaitable
    ]
    assert not sync, f"filters run through asyncio.to_thread: {sync}"
    handlers = [
        h
        for router in _routers(dispatcher)
        for observer in router.observers.values()
        for h in observer.handlers
    ]
    assert handlers and all(h.awaitable for h in handlers)


async def test_aiogram_awaits_a_filter_in_place_and_hands_a_magic_or_state_one_to_a_thread(
    monkeypatch,
) -> None:
    """What the test above reads: ``awaitable`` decides, when the filter is called,
    between awaiting it in place and ``asyncio.to_thread``; the wrapped filters give
    the bare ones' results."""
    threaded: list[object] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        threaded.append(func)
        return await real_to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)

    class Form(StatesGroup):
        step = State()

    event = SimpleNamespace(text="go")
    bare = [FilterObject(F.text == "go"), FilterObject(Form.step)]
    wrapped = [FilterObject(Magic(F.text == "go")), FilterObject(StateFilter(Form.step))]
    assert not any(f.awaitable for f in bare) and all(f.awaitable for f in wrapped)
    for state in (Form.step.state, None):
        before = len(threaded)
        results = [await f.call(event, raw_state=state) for f in bare]
        assert len(threaded) == before + 2
        assert [await f.call(event, raw_state=state) for f in wrapped] == results
        assert len(threaded) == before + 2  # no hand-off for the wrapped ones


def test_aiosqlite_connection_makes_a_queue_and_a_thread_it_does_not_start() -> None:
    params = list(inspect.signature(aiosqlite.Connection.__init__).parameters)
    assert params[1:3] == ["connector", "iter_chunk_size"]
    plain = aiosqlite.Connection(lambda: None, iter_chunk_size=64)  # type: ignore[arg-type,return-value]
    assert callable(plain._tx.put_nowait)
    assert isinstance(plain._thread, threading.Thread) and not plain._thread.is_alive()
    assert inspect.iscoroutinefunction(aiosqlite.Connection._connect)
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property)
    assert callable(aiosqlite.Connection.stop)  # SQLAlchemy's terminate calls it


async def test_sqlite_runs_on_the_loops_own_thread_and_no_worker_thread_starts(tmp_path) -> None:
    """Every call SQLAlchemy makes through aiosqlite (connect, create_function, the
    isolation level, cursor, execute, fetch, commit, rollback, close) is run by the
    InlineConnection at once: on this thread, with no aiosqlite worker thread."""
    before = set(threading.enumerate())
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with asyncio.timeout(TIMEOUT_S), engine.connect() as conn:
            raw = await conn.get_raw_connection()
            inline = raw.driver_connection
            assert isinstance(inline, InlineConnection)
            assert isinstance(inline._conn, sqlite3.Connection)  # execute_now's
            await inline.create_function("thread_id", 0, threading.get_ident)
            ran_on = (await conn.execute(text("SELECT thread_id()"))).scalar_one()
            assert ran_on == threading.get_ident()
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.commit()
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            await conn.rollback()
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [1]
            assert not inline._thread.is_alive()
        async with asyncio.timeout(TIMEOUT_S):
            await engine.dispose()  # closes the pooled connection through _tx too
        assert inline._connection is None
        assert set(threading.enumerate()) <= before
    finally:
        await engine.dispose()
