"""Engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

import asyncio
import sqlite3
import time
import weakref
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# An update may hold two connections at once (its session and the FSM
# storage's); bot.app caps concurrent updates below half of this.
POOL_SIZE, MAX_OVERFLOW = 10, 20
BUSY_TIMEOUT_S = 30  # SQLite: how long a writer waits for another process's lock


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    database = parsed.database or ":memory:"

    async def connect() -> aiosqlite.Connection:
        return await InlineConnection(
            partial(sqlite3.connect, database, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        )

    engine = create_async_engine(url, async_creator=connect, **kwargs)
    _make_sqlite_transactions_immediate(engine)
    return engine


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs each call at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:
            if future is None:
                raise
            future.set_exception(error)
        else:
            if future is not None:
                future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection with its calls run on the event loop's own thread.

    A query on a local SQLite file takes tens of microseconds; handing each call
    to aiosqlite's worker thread and back (a future, a wake-up of the loop, a
    switch of the GIL) cost more than that, several times per statement (cursor,
    execute, fetch, BEGIN, COMMIT). Run inline, a unit of work that only touches
    the database no longer yields to the loop between its statements. Waits on
    another process's write lock (busy_timeout) do block the loop; in this
    process writers queue on write_gate instead.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start

    def execute_now(self, sql: str) -> None:
        """A statement with no result (BEGIN, PRAGMA), from sync code."""
        self._conn.execute(sql)


def _make_sqlite_transactions_immediate(engine: AsyncEngine) -> None:
    """Let a unit of work take SQLite's write lock at BEGIN.

    With deferred transactions, two transactions that read and then write fail
    with "database is locked" instead of waiting. A connection whose execution
    options say ``sqlite_begin="IMMEDIATE"`` (services.tx) begins with the write
    lock, so the second waits on the busy timeout; plain reads stay deferred so
    they never hold the lock (in WAL mode they do not block the writer).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit is durable when the process crashes (the OS has the
        # log) and costs no fsync; a power cut may lose the last commits (the WAL is
        # synced at checkpoints). Production with several instances uses PostgreSQL.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        inline: InlineConnection = conn.connection.driver_connection
        if conn.get_execution_options().get("sqlite_begin") != "IMMEDIATE":
            inline.execute_now("BEGIN DEFERRED")
            return
        # Another process holding the write lock: wait for it on the event loop,
        # not in SQLite's busy handler, which would freeze the loop (the calls run
        # on its thread) and sleeps up to 100 ms between tries.
        inline.execute_now("PRAGMA busy_timeout=0")
        try:
            deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.0005
            while True:
                try:
                    inline.execute_now("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or (
                        time.monotonic() > deadline
                    ):
                        raise
                conn.connection.run_async(lambda _, pause=pause: asyncio.sleep(pause))
                pause = min(pause * 2, 0.01)
        finally:
            inline.execute_now(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


# One write gate per event loop and SQLite file, shared by every engine on it.
_GATES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]" = (
    weakref.WeakKeyDictionary()
)


def write_gate(db: AsyncSession) -> asyncio.Lock | None:
    """The lock a process's SQLite writers queue on before ``BEGIN IMMEDIATE``.

    SQLite has one writer at a time; a second writer that finds the lock taken
    waits in SQLite's busy handler, which sleeps 1, 2, 5, ... up to 100 ms between
    tries, so under load a write waits long after the lock came free (the bench
    saw p99s of seconds). Queuing in the event loop first wakes the next writer
    the moment the last one ends. Another process's lock is waited for in
    ``BEGIN IMMEDIATE``'s retries (_make_sqlite_transactions_immediate).
    None on PostgreSQL, whose row locks need no gate.
    """
    bind = db.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    gates = _GATES.setdefault(asyncio.get_running_loop(), {})
    database = bind.engine.url.database or ":memory:"
    gate = gates.get(database)
    if gate is None:
        gate = gates[database] = asyncio.Lock()
    return gate


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def upsert_insert(dialect: str, table: type | Table) -> Any:
    """The database's own ``INSERT`` (``dialect``: the engine's dialect name), which has
    ``ON CONFLICT``: PostgreSQL's, else SQLite's (the two databases we run on)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)
