"""A conditional UPDATE that gives its row back as written, so the object already
read in the session takes the new values without a second read of the row."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Row, inspect, update
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


async def update_returning(
    db: Db, model: type, where: Iterable[ColumnElement[bool]], values: dict[str, Any]
) -> Row[Any] | None:
    """``UPDATE model SET values WHERE where RETURNING`` every column; None when no row
    matched (another path moved it first)."""
    return (
        await db.execute(
            update(model)
            .where(*where)
            .values(**values)
            .returning(*(column for _key, column in _columns(model)))
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()


def take_row(obj: Any, row: Row[Any]) -> None:
    """``obj`` (the same row, read earlier in this session) takes ``row``'s values as
    the database holds them: nothing is marked changed, so no UPDATE follows."""
    for (key, _column), value in zip(_columns(type(obj)), row, strict=True):
        set_committed_value(obj, key, value)
