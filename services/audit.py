from models import AuditEntry
from services.tx import Db


def record(
    db: Db,
    entity: str,
    entity_id: int,
    action: str,
    actor_id: int | None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> None:
    """Add an audit row to the caller's transaction (who, when, why)."""
    db.add(
        AuditEntry(
            entity=entity,
            entity_id=entity_id,
            action=action,
            actor_id=actor_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
        )
    )
