"""Bookings, and a key that makes a listing's Submit act once

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:47:42.236109
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("listing_revisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submission_key", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_listing_revisions_submission_key"), ["submission_key"]
        )
    op.create_table(
        "bookings",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("charger_id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "accepted",
                "rejected",
                "expired",
                "cancelled",
                "charging",
                "completed",
                "no_show",
                name="bookingstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("device_model", sa.String(length=128), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_minor", BIGINT, nullable=False),
        sa.Column("price_unit", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("estimate_minor", BIGINT, nullable=True),
        sa.Column("respond_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["charger_id"], ["chargers.id"], name=op.f("fk_bookings_charger_id_chargers")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_bookings_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bookings_charger_window", ["charger_id", "status", "start_at"], unique=False
        )
        batch_op.create_index("ix_bookings_due", ["status", "respond_by"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookings_user_id"))
        batch_op.drop_index(batch_op.f("ix_bookings_merchant_id"))
        batch_op.drop_index("ix_bookings_due")
        batch_op.drop_index("ix_bookings_charger_window")

    op.drop_table("bookings")
    with op.batch_alter_table("listing_revisions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_listing_revisions_submission_key"), type_="unique")
        batch_op.drop_column("submission_key")
