"""The time the domain reasons in: aware UTC, shown in the configured zone.

Re-exported from models so that handlers and ui, which do not import models,
take "now" from the same clock."""

from models.base import utcnow

__all__ = ["utcnow"]
