from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, orm_insert_sentinel

from models.base import Base, utcnow


class OutboxMessage(Base):
    """A message owed to someone, written in the transaction that caused it.

    The sender renders it at delivery time (in the recipient's language) from
    ``kind`` and ``payload`` and marks it sent; failures are retried. A message
    of several Bot API calls (a text and a location, a photo and a card, a label
    per charger) records each part as it is settled in ``parts_done``, so a
    retry sends only the parts still owed.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "sent_at", "failed_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(48))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    # a sender holds a row until this time; another may take it afterwards
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # part key -> "sent", or "failed: <reason>" when Telegram refused it for good
    parts_done: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    # Lets one INSERT write all the messages a transaction owes: SQLite cannot tell
    # which new id belongs to which row of a multi-row INSERT, so without a column
    # the client fills in, SQLAlchemy inserts them one statement each.
    _sentinel: Mapped[int] = orm_insert_sentinel("sentinel")
