"""One active charger per smart plug

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

Two chargers on one (driver, plug id) switch each other's power. The index
cannot be built while such a pair exists, and which merchant really has the
plug is for a person to find out, so the upgrade stops with the pairs named
instead of choosing one itself (deactivate one of each: UPDATE chargers SET
active = false WHERE id = …).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_chargers_active_plug"


def upgrade() -> None:
    bind = op.get_bind()
    shared = bind.execute(
        sa.text(
            "SELECT plug_driver, plug_id FROM chargers WHERE active "
            "GROUP BY plug_driver, plug_id HAVING COUNT(*) > 1 ORDER BY plug_driver, plug_id"
        )
    ).all()
    if shared:
        pairs = []
        for driver, plug in shared:
            ids = bind.execute(
                sa.text(
                    "SELECT id FROM chargers WHERE active AND plug_driver = :driver "
                    "AND plug_id = :plug ORDER BY id"
                ),
                {"driver": driver, "plug": plug},
            ).scalars()
            pairs.append(f"{driver} {plug!r}: chargers {', '.join(map(str, ids))}")
        raise RuntimeError(
            f"active chargers share a smart plug, so the unique index {INDEX} cannot be "
            f"built ({'; '.join(pairs)}). Keep one active charger per plug "
            "(UPDATE chargers SET active = false WHERE id = …) and start again."
        )
    op.create_index(
        INDEX,
        "chargers",
        ["plug_driver", "plug_id"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="chargers")
