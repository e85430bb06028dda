"""Alembic migrations on SQLite and PostgreSQL: up to head, down to base, and
the models match what the migrations build (no forgotten revision)."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from migrations.runner import current_heads, downgrade, upgrade
from models import Base
from models.base import utcnow
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
    "ledger_accounts",
    "ledger_transactions",
    "ledger_entries",
    "invoices",
    "payments",
    "refund_requests",
    "payouts",
    "cards",
    "alembic_version",
}
HEAD = "0012"


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert tables >= TABLES
        assert await current_heads(engine) == {HEAD}

        await downgrade(engine, "base")
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        assert await current_heads(engine) == set()

        await upgrade(engine)  # and back again: downgrade left nothing behind
        assert await current_heads(engine) == {HEAD}
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


async def test_one_charger_per_plug_names_the_plugs_shared_before_it(database_url: str) -> None:
    """0005's unique index cannot be built over chargers that share a plug: the
    upgrade stops and names them rather than choosing which merchant keeps it."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0004")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users (id, first_name, created_at) VALUES (1, 'a', :now)"),
                {"now": utcnow()},
            )
            for listing_id in (1, 2):
                await conn.execute(
                    text(
                        "INSERT INTO listings (id, merchant_id, status, published, paused, "
                        "created_at) VALUES (:id, 1, 'approved', true, false, :now)"
                    ),
                    {"id": listing_id, "now": utcnow()},
                )
            for listing_id in (1, 2):
                await conn.execute(
                    text(
                        "INSERT INTO chargers (listing_id, position, active, method, "
                        "device_kinds, device_models, supply_kind, supply_model, hours, "
                        "price_minor, price_unit, currency, plug_driver, plug_id, qr_token, "
                        "created_at) VALUES (:id, 0, true, 'socket', '[]', '', 's', 's', '{}', "
                        "100, 'hour', 'CNY', 'tasmota', 'tasmota_A1', :token, :now)"
                    ),
                    {"id": listing_id, "token": f"t{listing_id}", "now": utcnow()},
                )
        with pytest.raises(RuntimeError, match=r"tasmota 'tasmota_A1': chargers 1, 2"):
            await upgrade(engine)
        assert await current_heads(engine) == {"0004"}  # nothing half-done
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE chargers SET active = false WHERE id = 2"))
        await upgrade(engine)
        assert await current_heads(engine) == {HEAD}
    finally:
        await engine.dispose()
