"""Labels and pairing: a short code per charger, when its plug was paired

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 06:00:00.000000

Every charger gets a random short code (typed as ``/code K7P2QX`` when a camera
cannot scan its label). Chargers listed before pairing existed count as paired at
their creation: they were switched under the old rules and stay bookable.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
# the same as models.listing (a migration keeps its own copy: models change later)
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def upgrade() -> None:
    with op.batch_alter_table("chargers") as batch:
        batch.add_column(sa.Column("short_code", sa.String(6), nullable=True))
        batch.add_column(sa.Column("paired_at", UTC, nullable=True))
    bind = op.get_bind()
    ids = bind.execute(sa.text("SELECT id FROM chargers")).scalars().all()
    used: set[str] = set()
    for charger_id in ids:
        code = "".join(secrets.choice(ALPHABET) for _ in range(6))
        while code in used:
            code = "".join(secrets.choice(ALPHABET) for _ in range(6))
        used.add(code)
        bind.execute(
            sa.text("UPDATE chargers SET short_code = :code WHERE id = :id"),
            {"code": code, "id": charger_id},
        )
    bind.execute(sa.text("UPDATE chargers SET paired_at = created_at"))
    with op.batch_alter_table("chargers") as batch:
        batch.alter_column("short_code", existing_type=sa.String(6), nullable=False)
        batch.create_unique_constraint("uq_chargers_short_code", ["short_code"])


def downgrade() -> None:
    with op.batch_alter_table("chargers") as batch:
        batch.drop_constraint("uq_chargers_short_code", type_="unique")
        batch.drop_column("paired_at")
        batch.drop_column("short_code")
