"""Walk-up charging and stop when full: per charger walk-up acceptance and the
"full" threshold, whether its plug meters power; walk-up and "until full" bookings;
a session's low-power watch

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("chargers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("walkup_auto", sa.Boolean(), server_default=sa.text("true"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("full_below_w", BIGINT, server_default=sa.text("10"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("full_minutes", BIGINT, server_default=sa.text("3"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("meters_power", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("walkup", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("until_full", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    with op.batch_alter_table("charging_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("drew_power", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(sa.Column("low_power_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("charging_sessions", schema=None) as batch_op:
        batch_op.drop_column("low_power_since")
        batch_op.drop_column("drew_power")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_column("until_full")
        batch_op.drop_column("walkup")
    with op.batch_alter_table("chargers", schema=None) as batch_op:
        batch_op.drop_column("meters_power")
        batch_op.drop_column("full_minutes")
        batch_op.drop_column("full_below_w")
        batch_op.drop_column("walkup_auto")
