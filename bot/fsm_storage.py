"""aiogram FSM storage in the product's database, so a restart keeps every
conversation where it was (the answers typed so far included).

What was last read or written is kept in memory, so the state aiogram looks up for
every update, and the data a step reads before it writes, cost no query. One polling
process owns its conversations (several instances use Redis instead), so the copy
stays true. Writes go to the database at once, except while an update is handled
inside ``one_write_per_update``: a step's ``update_data`` and ``set_state`` (two
writes in aiogram) then become one statement at the update's end. aiogram's event
isolation holds the conversation's lock until then, so its next update reads what
this one wrote. A handler's ``step`` (services/tx.py) writes them sooner, in the
transaction of the step's own reads and writes, so a step is one transaction.
"""

import contextvars
import copy
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    DEFAULT_DESTINY,
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StorageKey,
)
from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.exc import IntegrityError

from models import FsmRecord
from models.db import upsert_insert
from services.lru import Lru
from services.tx import Db, OpenDb, owing, transaction

_Entry = tuple[str | None, dict[str, Any]]
# while an update is handled: row key → (the entry before the update, the latest,
# which of its fields were written)
_Pending = dict[str, tuple[_Entry, _Entry, frozenset[str]]]
_PENDING: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "fsm_pending", default=None
)


class SqlStorage(BaseStorage):
    def __init__(
        self,
        open_db: OpenDb,
        key_builder: KeyBuilder | None = None,
        cache_size: int = 20_000,
    ) -> None:
        self._open_db = open_db
        self._keys = key_builder or DefaultKeyBuilder(with_destiny=True)
        self._cache: Lru[str, _Entry] = Lru(cache_size)

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._read(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return copy.deepcopy((await self._read(key))[1])

    async def close(self) -> None:
        self._cache.clear()

    def _remember(self, storage_key: str, entry: _Entry) -> None:
        self._cache.put(storage_key, entry)

    async def _read(self, key: StorageKey) -> _Entry:
        storage_key = self._keys.build(key)
        pending = _PENDING.get()
        if pending is not None and storage_key in pending:  # written in this update
            return pending[storage_key][1]
        entry = self._cache.get(storage_key)
        if entry is not None:
            return entry
        async with self._open_db() as db:
            record = await db.get(FsmRecord, storage_key)
            entry = (record.state, dict(record.data or {})) if record else (None, {})
        self._remember(storage_key, entry)
        return entry

    @asynccontextmanager
    async def one_write_per_update(self) -> AsyncIterator[None]:
        """Writes of known conversations wait until the block ends, then each row is
        written once (also when the block fails: what a step wrote before the error
        is kept, as when each write went at once)."""
        pending: _Pending = {}
        token = _PENDING.set(pending)
        try:
            with owing(self):
                yield
        finally:
            _PENDING.reset(token)
            for storage_key, (before, latest, fields) in pending.items():
                if latest == before:
                    continue
                values = {f: latest[0] if f == "state" else latest[1] for f in fields}
                self._cache.pop(storage_key)
                if not await self._write_known(storage_key, before, values):
                    await self._write_read_first(storage_key, values)

    async def write_into(self, db: Db) -> Callable[[], None] | None:
        """The rows this update owes, written in ``db``'s unit of work (a handler's
        ``step``): one statement each (an upsert of the fields written, or a delete
        of a row left empty), with no read first."""
        pending = _PENDING.get()
        owed = {k: v for k, v in (pending or {}).items() if v[1] != v[0]}
        if pending is None or not owed:
            return None
        dialect = db.get_bind().dialect.name
        for storage_key, (_before, (state, data), fields) in owed.items():
            if state is None and not data:
                await db.execute(_DELETE, {"row_key": storage_key})
            else:
                row = {"key": storage_key, "state": state, "data": data}
                await db.execute(_upsert(dialect, frozenset(fields)), row)

        def written() -> None:  # committed: what was written is the row now
            for storage_key, (_before, latest, _fields) in owed.items():
                _now_before, now_latest, now_fields = pending[storage_key]
                left = now_fields if now_latest != latest else frozenset()
                pending[storage_key] = (latest, now_latest, left)

        return written

    def savepoint(self) -> Callable[[], None]:
        """What undoes the writes made from now on (a step that rolled back): the
        conversation is back where it was when the step began."""
        pending = _PENDING.get()
        if pending is None:
            return lambda: None
        saved = dict(pending)  # its entries are not changed in place, only replaced

        def undo() -> None:
            for storage_key, (before, _latest, _fields) in pending.items():
                kept = saved[storage_key][1] if storage_key in saved else before
                self._remember(storage_key, (kept[0], copy.deepcopy(kept[1])))
            pending.clear()
            pending.update(saved)

        return undo

    async def _write(self, key: StorageKey, **values: Any) -> None:
        storage_key = self._keys.build(key)
        pending = _PENDING.get()
        if pending is None:
            await self._write_now(storage_key, values)
            return
        held = pending.get(storage_key)
        known = held[1] if held is not None else self._cache.get(storage_key)
        if known is None:
            # read first (a read takes no write lock, which a step holds on SQLite);
            # the write then waits for the step or the update's end like any other
            known = await self._read(key)
        state = values.get("state", known[0])
        entry = (state, copy.deepcopy(dict(values.get("data", known[1]) or {})))
        before, fields = (held[0], held[2]) if held is not None else (known, frozenset())
        pending[storage_key] = (before, entry, fields | values.keys())
        self._remember(storage_key, (state, copy.deepcopy(entry[1])))

    async def _write_now(self, storage_key: str, values: dict[str, Any]) -> None:
        # forgotten first: should the write fail, the next read asks the database
        known = self._cache.pop(storage_key)
        if known is not None and await self._write_known(storage_key, known, values):
            return
        await self._write_read_first(storage_key, values)

    async def _write_read_first(self, storage_key: str, values: dict[str, Any]) -> None:
        async with self._open_db() as db, transaction(db):
            record = await db.get(FsmRecord, storage_key)
            state = values.get("state", record.state if record else None)
            data = values.get("data", record.data if record else {})
            if state is None and not data:
                if record is not None:
                    await db.delete(record)  # nothing left to remember
            elif record is None:
                db.add(FsmRecord(key=storage_key, state=state, data=data))
            else:
                record.state, record.data = state, data
        self._remember(storage_key, (state, copy.deepcopy(dict(data or {}))))

    async def _write_known(self, storage_key: str, known: _Entry, values: dict[str, Any]) -> bool:
        """A write whose current row the cache knows: one statement, no read first.

        An empty entry has no row (rows left empty are deleted); writing what is
        already there costs nothing. Returns False when the database disagrees
        with the cache, for the caller to read and write instead.
        """
        state = values.get("state", known[0])
        data = dict(values.get("data", known[1]) or {})
        had_row, has_row = known != (None, {}), state is not None or bool(data)
        if (state, data) != known:
            row: dict[str, Any]
            if not has_row:
                statement, row = _DELETE, {"row_key": storage_key}
            elif had_row:
                statement = _UPDATE
                row = {"row_key": storage_key, "new_state": state, "new_data": data}
            else:
                statement, row = _INSERT, {"key": storage_key, "state": state, "data": data}
            try:
                async with self._open_db() as db, transaction(db):
                    try:
                        result = await db.execute(statement, row)
                    except IntegrityError as error:
                        raise _CacheDisagrees from error  # a row the cache did not know of
                    if had_row and result.rowcount != 1:  # type: ignore[attr-defined]
                        raise _CacheDisagrees  # the row is gone
            except _CacheDisagrees:
                return False
        self._remember(storage_key, (state, copy.deepcopy(data)))
        return True


# A step's statements, built once (building one costs more than SQLite takes to run it)
# (no FsmRecord object is held where they run: nothing in the session to keep in step)
_DELETE: Any = (
    delete(FsmRecord)
    .where(FsmRecord.key == bindparam("row_key"))
    .execution_options(synchronize_session=False)
)
_UPDATE: Any = (
    update(FsmRecord)
    .where(FsmRecord.key == bindparam("row_key"))
    .values(state=bindparam("new_state"), data=bindparam("new_data"))
    .execution_options(synchronize_session=False)
)
_INSERT: Any = insert(FsmRecord)


@functools.cache
def _upsert(dialect: str, fields: frozenset[str]) -> Any:
    """A row written whatever it is now; an existing row gets ``fields`` only."""
    statement = upsert_insert(dialect, FsmRecord)
    return statement.on_conflict_do_update(
        index_elements=[FsmRecord.key], set_={f: statement.excluded[f] for f in sorted(fields)}
    )


class _CacheDisagrees(Exception):
    """Rolls the one-statement write back; the caller reads and writes instead."""


class DestinyKeyBuilder(KeyBuilder):
    """aiogram's Redis keys with the destiny named only when it is not the default.

    A conversation's keys stay what they were (an upgrade loses none), and a
    record of another destiny (the listing wizard's draft) gets a key of its own
    (one part more, so the two never meet).
    """

    def __init__(self) -> None:
        self._plain = DefaultKeyBuilder()
        self._with_destiny = DefaultKeyBuilder(with_destiny=True)

    def build(self, key: StorageKey, part: Literal["data", "state", "lock"] | None = None) -> str:
        builder = self._plain if key.destiny == DEFAULT_DESTINY else self._with_destiny
        return builder.build(key, part)
