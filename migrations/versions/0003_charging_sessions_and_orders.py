"""Charging sessions and orders

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:45:25.937411
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = "status IN ('starting', 'charging', 'stopping')"


def upgrade() -> None:
    op.create_table(
        "charging_sessions",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("booking_id", BIGINT, nullable=False),
        sa.Column("charger_id", BIGINT, nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "starting",
                "charging",
                "stopping",
                "completed",
                "failed",
                name="sessionstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("plug_driver", sa.String(length=16), nullable=False),
        sa.Column("plug_id", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopping_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_kwh", sa.Double(), nullable=True),
        sa.Column("last_kwh", sa.Double(), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("power_off_confirmed", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_charging_sessions_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["charger_id"], ["chargers.id"], name=op.f("fk_charging_sessions_charger_id_chargers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charging_sessions")),
    )
    with op.batch_alter_table("charging_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_charging_sessions_booking_id"), ["booking_id"], unique=False
        )
        batch_op.create_index(
            "ix_charging_sessions_status_charger", ["status", "charger_id"], unique=False
        )
        batch_op.create_index("ix_charging_sessions_plug", ["plug_id", "status"], unique=False)
        batch_op.create_index(
            "uq_charging_sessions_active_charger",
            ["charger_id"],
            unique=True,
            sqlite_where=sa.text(ACTIVE),
            postgresql_where=sa.text(ACTIVE),
        )

    op.create_table(
        "orders",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("session_id", BIGINT, nullable=False),
        sa.Column("booking_id", BIGINT, nullable=False),
        sa.Column("charger_id", BIGINT, nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", BIGINT, nullable=False),
        sa.Column("energy_kwh", sa.Numeric(precision=12, scale=3), nullable=True),
        sa.Column("energy_suspect", sa.Boolean(), nullable=False),
        sa.Column("price_minor", BIGINT, nullable=False),
        sa.Column("price_unit", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cost_minor", BIGINT, nullable=False),
        sa.Column("end_reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_orders_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["charger_id"], ["chargers.id"], name=op.f("fk_orders_charger_id_chargers")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["charging_sessions.id"],
            name=op.f("fk_orders_session_id_charging_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("session_id", name=op.f("uq_orders_session_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_user_id"))
        batch_op.drop_index(batch_op.f("ix_orders_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_orders_booking_id"))

    op.drop_table("orders")
    with op.batch_alter_table("charging_sessions", schema=None) as batch_op:
        batch_op.drop_index("uq_charging_sessions_active_charger")
        batch_op.drop_index("ix_charging_sessions_plug")
        batch_op.drop_index("ix_charging_sessions_status_charger")
        batch_op.drop_index(batch_op.f("ix_charging_sessions_booking_id"))

    op.drop_table("charging_sessions")
