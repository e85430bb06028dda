from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class HandledUpdate(Base):
    """A webhook update an instance took on, then finished: Telegram delivers an
    update again when its answer did not arrive, and the repeat must not act twice.

    The taker holds a short lease (``claimed_until``, renewed while it works), so a
    repeat of an update whose taker died is handled, not skipped. Rows are pruned
    after a day (Telegram keeps an undelivered update no longer than that).
    """

    __tablename__ = "handled_updates"

    update_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    owner: Mapped[str] = mapped_column(String(32))
    claimed_until: Mapped[datetime]
    handled_at: Mapped[datetime | None]
