"""A pytest plugin that counts the SQL statements each update makes (diagnostics for
figure 1 of docs/benchmarks.md: the cost per update is its database round trips).

    .venv/bin/python -m pytest -p bench.sqlcount tests/test_flow_booking.py -k sqlite

prints, at exit, the statements per message update and per button press, by kind
(BEGIN stands for a transaction: SQLite's is sent on the driver, so it is counted
from the engine's "begin" event; COMMIT is not counted).
"""

import atexit
import collections
import contextvars
import os
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

import bot.middlewares as middlewares

_current: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "sqlcount", default=None
)
_stats: dict[str, list[collections.Counter[str]]] = collections.defaultdict(list)


# SQLCOUNT_VERBOSE=1: also print each update's statements (what the update was, then
# one line per statement), to see which step makes which query
_VERBOSE = bool(os.environ.get("SQLCOUNT_VERBOSE"))
_lines: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "sqlcount_lines", default=None
)


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    bucket = _current.get()
    if bucket is not None:
        bucket.append(statement.split()[0].upper())
        lines = _lines.get()
        if lines is not None:
            lines.append(" ".join(statement.split())[:160])


@event.listens_for(Engine, "begin")
def _count_begin(conn: Any) -> None:
    bucket = _current.get()
    if bucket is not None:
        bucket.append("BEGIN")


# the outermost of our middlewares that touch the database (the FSM's one write per
# update is made as it ends)
_handle = middlewares.OneFsmWritePerUpdate.__call__


async def _counted(self: Any, handler: Any, update: Any, data: dict[str, Any]) -> Any:
    bucket: list[str] = []
    token = _current.set(bucket)
    lines: list[str] = []
    lines_token = _lines.set(lines) if _VERBOSE else None
    try:
        return await _handle(self, handler, update, data)
    finally:
        _current.reset(token)
        if lines_token is not None:
            _lines.reset(lines_token)
        kind = "button press" if getattr(update, "callback_query", None) else "message"
        _stats[kind].append(collections.Counter(bucket))
        if _VERBOSE:
            query = getattr(update, "callback_query", None)
            message = getattr(update, "message", None)
            what = query.data if query else (message.text if message else "?") if message else "?"
            print(f"\n-- {kind} {what!r}: {len(bucket)} ({', '.join(bucket)})")
            for line in lines:
                print(f"   {line}")


middlewares.OneFsmWritePerUpdate.__call__ = _counted  # type: ignore[method-assign]


@atexit.register
def _report() -> None:
    for kind, counts in _stats.items():
        total: collections.Counter[str] = collections.Counter()
        for count in counts:
            total.update(count)
        n = len(counts)
        parts = ", ".join(f"{k} {v / n:.1f}" for k, v in total.most_common())
        print(f"\nSQL per {kind} ({n} updates): {sum(total.values()) / n:.1f} ({parts})")
