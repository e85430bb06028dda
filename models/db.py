"""Engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from typing import Any

from sqlalchemy import event
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


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
    _make_sqlite_transactions_immediate(engine)
    return engine


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
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
