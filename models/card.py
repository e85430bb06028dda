from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Card(Base):
    """A message that shows the state of something (a booking, a charging session,
    a listing's version) and where it is, so it can be edited when the state changes.

    ``subject`` and ``subject_id`` name what it shows, ``role`` which card of it
    (the merchant's request, the rider's booking, ...); one row per message.
    """

    __tablename__ = "cards"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", name="uq_cards_chat_message"),
        Index("ix_cards_subject", "subject", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int]
    role: Mapped[str] = mapped_column(String(24))
    chat_id: Mapped[int]
    message_id: Mapped[int]
    # a photo's caption is edited, not its text
    is_photo: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
