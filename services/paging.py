"""One page of a long list: what a message can show, and where it stands."""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from services.tx import Db

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    number: int  # 0-based, within 0 .. pages - 1
    pages: int  # at least 1, also for an empty list
    size: int

    @property
    def offset(self) -> int:
        return self.number * self.size


def clamp(total: int, number: int, size: int) -> tuple[int, int]:
    """(page number, pages) for ``total`` items: a page past the end (the list got
    shorter since the button was made) shows the last one."""
    pages = max(1, -(-total // size))
    return min(max(number, 0), pages - 1), pages


async def page_of(
    db: Db,
    statement: Select[*tuple[Any, ...]],
    number: int,
    size: int,
    *,
    rows: bool = False,
) -> Page[Any]:
    """Count the statement's results, then load one page of them (scalars, or whole
    rows with ``rows``). The statement must be ordered, for pages to be stable."""
    total = await db.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    number, pages = clamp(total or 0, number, size)
    paged = statement.offset(number * size).limit(size)
    items = list((await db.execute(paged)).all() if rows else (await db.scalars(paged)))
    return Page(items, total or 0, number, pages, size)
