"""A conditional UPDATE that gives its row back as written, so the object already
read in the session takes the new values without a second read of the row."""

import functools
from collections.abc import Hashable
from typing import Any

from sqlalchemy import Row, bindparam, inspect, update
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import set_committed_value

from services.tx import Db

# model → its mapped attributes and their columns, in RETURNING's order
_COLUMNS: dict[type, list[tuple[str, Any]]] = {}


def _columns(model: type) -> list[tuple[str, Any]]:
    if model not in _COLUMNS:
        mapper: Mapper[Any] = inspect(model)
        _COLUMNS[model] = [(attr.key, attr.columns[0]) for attr in mapper.column_attrs]
    return _COLUMNS[model]


async def move_returning(
    db: Db, model: Any, row_id: int, allowed: tuple[Hashable, ...], values: dict[str, Any]
) -> Row[Any] | None:
    """``UPDATE model SET values WHERE id = row_id AND status IN allowed RETURNING``
    every column; None when no row matched (another path moved it first)."""
    statement = _move_statement(model, allowed, tuple(values))
    params = {"row_id": row_id, **{f"new_{key}": value for key, value in values.items()}}
    return (await db.execute(statement, params)).one_or_none()


@functools.cache
def _move_statement(model: Any, allowed: tuple[Hashable, ...], keys: tuple[str, ...]) -> Any:
    """Built once for each kind of move (building a statement costs more than
    running it: docs/benchmarks.md)."""
    return (
        update(model)
        .where(model.id == bindparam("row_id"), model.status.in_(allowed))
        .values({key: bindparam(f"new_{key}") for key in keys})
        .returning(*(column for _key, column in _columns(model)))
        .execution_options(synchronize_session=False)
    )


def take_row(obj: Any, row: Row[Any]) -> None:
    """``obj`` (the same row, read earlier in this session) takes ``row``'s values as
    the database holds them: nothing is marked changed, so no UPDATE follows."""
    for (key, _column), value in zip(_columns(type(obj)), row, strict=True):
        set_committed_value(obj, key, value)
