"""A domain refusal (services.errors.DomainError) as the person reads it.

Services refuse with a message key and its parameters; here the parameters become
words (times in the local zone, booking states by name, the free windows of a day)
and, where the refusal offers a way on, a button (a start that may be tried again
gets its Start button back). handlers/errors.py sends it, for every handler.
"""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup

from services.errors import DomainError, StartFailed
from services.listing_draft import DraftIncomplete
from ui.i18n import Translator
from ui.views.booking import window_text
from ui.views.charging import clock, start_button
from ui.views.listing import missing_text


@dataclass(frozen=True)
class Refusal:
    text: str
    markup: InlineKeyboardMarkup | None = None
    # it takes the place of the pressed message's text (a start that failed:
    # "Switching on…" becomes why, with Start again), rather than an alert
    in_place: bool = False
    # too much for an alert (a list of free windows): a message of its own
    as_message: bool = False


def refusal(t: Translator, error: DomainError, zone: ZoneInfo, now: datetime) -> Refusal:
    params: dict[str, object] = {}
    free: list[tuple[str, str]] | None = None
    for name, value in error.params.items():
        if name == "free":  # a window refused: the free ones of that day
            free = value
            continue
        if isinstance(value, datetime):
            value = clock(value, zone, now)
        elif name == "status":
            value = t(f"booking.status_{value}")
        elif name == "currency" and isinstance(value, str):  # 元 next to an amount in zh
            value = t.currency(value)
        elif isinstance(value, tuple | list):  # a list, joined as the language writes one
            value = t.join(str(item) for item in value)
        params[name] = value
    if isinstance(error, DraftIncomplete):  # the gaps, as the wizard's Edit menu names them
        params["fields"] = missing_text(t, error.draft)
    text = t(error.key, **params)
    if free is not None:
        windows = [
            window_text(datetime.fromisoformat(s), datetime.fromisoformat(e), zone) for s, e in free
        ]
        listed = "\n".join(f"• {w}" for w in windows) or t("booking.no_free")
        text += "\n" + t("booking.free_windows", windows=listed)
    if isinstance(error, StartFailed):
        return Refusal(text, start_button(t, error.booking_id), in_place=True)
    return Refusal(text, as_message=free is not None)
