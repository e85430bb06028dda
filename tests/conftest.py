"""Shared fixtures: real databases (SQLite and a throwaway PostgreSQL), migrated
by Alembic exactly as the product does it, and a real mosquitto per test module
(tests may restart it, so modules do not share one)."""

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from migrations.runner import upgrade
from models.db import create_engine, create_session_factory
from tests.support.services import (
    MosquittoServer,
    PostgresServer,
    start_mosquitto,
    start_postgres,
)

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind (the test runs once per kind)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chargeshare.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t{next(_db_numbers)}_{request.node.name[:30]}".lower()
    name = "".join(c if c.isalnum() else "_" for c in name)
    url = await server.create_database(name)
    yield url
    await server.drop_database(name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def open_db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)
