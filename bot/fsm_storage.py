"""aiogram FSM storage in the product's database, so a restart keeps every
conversation where it was (the answers typed so far included)."""

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import FsmRecord
from services.tx import transaction


class SqlStorage(BaseStorage):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self._sessions = sessions
        self._keys = key_builder or DefaultKeyBuilder(with_destiny=True)

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._read(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._read(key)
        return dict(record.data) if record and record.data else {}

    async def close(self) -> None:
        pass

    async def _read(self, key: StorageKey) -> FsmRecord | None:
        async with self._sessions() as session:
            return await session.get(FsmRecord, self._keys.build(key))

    async def _write(self, key: StorageKey, **values: Any) -> None:
        storage_key = self._keys.build(key)
        async with self._sessions() as session, transaction(session):
            record = await session.get(FsmRecord, storage_key)
            state = values.get("state", record.state if record else None)
            data = values.get("data", record.data if record else {})
            if state is None and not data:
                if record is not None:
                    await session.delete(record)  # nothing left to remember
            elif record is None:
                session.add(FsmRecord(key=storage_key, state=state, data=data))
            else:
                record.state, record.data = state, data
