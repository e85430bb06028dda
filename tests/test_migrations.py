"""Alembic migrations on SQLite and PostgreSQL: up to head, down to base, and
the models match what the migrations build (no forgotten revision)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from migrations.runner import current_heads, downgrade, upgrade
from models import Base
from models.db import create_engine

TABLES = {
    "users",
    "listings",
    "listing_revisions",
    "chargers",
    "outbox",
    "audit_log",
    "fsm_states",
    "bookings",
    "charging_sessions",
    "orders",
    "handled_updates",
    "alembic_version",
}


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert tables >= TABLES
        assert await current_heads(engine) == {"0006"}

        await downgrade(engine, "base")
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        assert await current_heads(engine) == set()

        await upgrade(engine)  # and back again: downgrade left nothing behind
        assert await current_heads(engine) == {"0006"}
    finally:
        await engine.dispose()


async def test_models_match_migrations(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
        assert diff == [], f"models and migrations differ; add a revision: {diff}"
    finally:
        await engine.dispose()
