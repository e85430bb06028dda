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
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

import bot.middlewares as middlewares

_current: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "sqlcount", default=None
)
_stats: dict[str, list[collections.Counter[str]]] = collections.defaultdict(list)


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    bucket = _current.get()
    if bucket is not None:
        bucket.append(statement.split()[0].upper())


@event.listens_for(Engine, "begin")
def _count_begin(conn: Any) -> None:
    bucket = _current.get()
    if bucket is not None:
        bucket.append("BEGIN")


_handle = middlewares.DbSessionMiddleware.__call__


async def _counted(self: Any, handler: Any, update: Any, data: dict[str, Any]) -> Any:
    bucket: list[str] = []
    token = _current.set(bucket)
    try:
        return await _handle(self, handler, update, data)
    finally:
        _current.reset(token)
        kind = "button press" if getattr(update, "callback_query", None) else "message"
        _stats[kind].append(collections.Counter(bucket))


middlewares.DbSessionMiddleware.__call__ = _counted  # type: ignore[method-assign]


@atexit.register
def _report() -> None:
    for kind, counts in _stats.items():
        total: collections.Counter[str] = collections.Counter()
        for count in counts:
            total.update(count)
        n = len(counts)
        parts = ", ".join(f"{k} {v / n:.1f}" for k, v in total.most_common())
        print(f"\nSQL per {kind} ({n} updates): {sum(total.values()) / n:.1f} ({parts})")
