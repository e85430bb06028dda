"""The outbox's rows of one transaction are inserted by one statement

A column that the client fills in on INSERT (SQLAlchemy's insert sentinel) lets
SQLAlchemy match the ids that one multi-row INSERT … RETURNING gives back to its
rows on SQLite, where the order of new ids cannot be relied on; without it, the
rows are inserted one statement each.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # a nullable column: both databases add it in place, without copying the table
    op.add_column("outbox", sa.Column("sentinel", BIGINT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("sentinel")
