"""Initial schema: users, listings with revisions and chargers, outbox, audit log, FSM

Revision ID: 0001
Revises:
Create Date: 2026-11-28 12:46:56.397627
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids; INTEGER on SQLite, where only that type autoincrements a primary key
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", BIGINT, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor_id", BIGINT, nullable=True),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "fsm_states",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=128), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fsm_states")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("chat_id", BIGINT, nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", BIGINT, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["sent_at", "failed_at", "due_at"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", BIGINT, autoincrement=False, nullable=False),
        sa.Column("first_name", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("telegram_language", sa.String(length=16), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "listings",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "rejected",
                name="listingstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("shop_name", sa.String(length=128), nullable=True),
        sa.Column("photo_file_id", sa.String(length=256), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("address", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["users.id"], name=op.f("fk_listings_merchant_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.create_index("ix_listings_lat_lon", ["latitude", "longitude"], unique=False)
        batch_op.create_index(batch_op.f("ix_listings_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "chargers",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("listing_id", BIGINT, nullable=False),
        sa.Column("position", BIGINT, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("device_kinds", sa.JSON(), nullable=False),
        sa.Column("device_models", sa.String(length=256), nullable=False),
        sa.Column("supply_kind", sa.String(length=64), nullable=False),
        sa.Column("supply_model", sa.String(length=64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("price_minor", BIGINT, nullable=False),
        sa.Column("price_unit", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("plug_driver", sa.String(length=16), nullable=False),
        sa.Column("plug_id", sa.String(length=64), nullable=False),
        sa.Column("qr_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_chargers_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chargers")),
        sa.UniqueConstraint("qr_token", name=op.f("uq_chargers_qr_token")),
    )
    with op.batch_alter_table("chargers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chargers_listing_id"), ["listing_id"], unique=False)

    op.create_table(
        "listing_revisions",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("listing_id", BIGINT, nullable=False),
        sa.Column("number", BIGINT, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "rejected",
                "withdrawn",
                "superseded",
                name="revisionstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", BIGINT, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("card_chat_id", BIGINT, nullable=True),
        sa.Column("card_message_id", BIGINT, nullable=True),
        sa.Column("card_is_photo", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_listing_revisions_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_revisions")),
        sa.UniqueConstraint("listing_id", "number", name=op.f("uq_listing_revisions_listing_id")),
    )
    with op.batch_alter_table("listing_revisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_listing_revisions_listing_id"), ["listing_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_listing_revisions_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("listing_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listing_revisions_status"))
        batch_op.drop_index(batch_op.f("ix_listing_revisions_listing_id"))

    op.drop_table("listing_revisions")
    with op.batch_alter_table("chargers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chargers_listing_id"))

    op.drop_table("chargers")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listings_merchant_id"))
        batch_op.drop_index("ix_listings_lat_lon")

    op.drop_table("listings")
    op.drop_table("users")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    op.drop_table("fsm_states")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_entity")

    op.drop_table("audit_log")
