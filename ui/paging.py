"""◀️ / ▶️ under a long list, and the page counter in its text.

Every list the bot sends (/pending, /listings, /bookings, /sessions) is one
message of at most a page of items, so it stays far inside Telegram's limits
(4096 characters, a few dozen buttons) however long the list grows.
"""

from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from services.paging import Page
from ui.callbacks import PageCb, PageOf
from ui.i18n import Translator


def counter(t: Translator, page: Page[Any]) -> str:
    """ "(page 2/7)" when there is more than one page, else nothing."""
    if page.pages <= 1:
        return ""
    return t("paging.counter", page=page.number + 1, pages=page.pages)


def nav_row(t: Translator, of: PageOf, page: Page[Any]) -> list[InlineKeyboardButton]:
    """◀️ and ▶️ where there is a page to go to (nothing for one page)."""
    row = []
    if page.number > 0:
        row.append(
            InlineKeyboardButton(
                text=t("btn.previous"), callback_data=PageCb(of=of, page=page.number - 1).pack()
            )
        )
    if page.number < page.pages - 1:
        row.append(
            InlineKeyboardButton(
                text=t("btn.next"), callback_data=PageCb(of=of, page=page.number + 1).pack()
            )
        )
    return row


def with_nav(
    t: Translator, of: PageOf, page: Page[Any], markup: InlineKeyboardMarkup | None = None
) -> InlineKeyboardMarkup | None:
    """``markup`` (or none) with the page's ◀️ / ▶️ row under it, if it has one."""
    row = nav_row(t, of, page)
    if not row:
        return markup
    rows = [*(markup.inline_keyboard if markup else []), row]
    return InlineKeyboardMarkup(inline_keyboard=rows)
