"""The last line: an error in a handler is logged, and the person is told that
what they typed is kept (the FSM data lives in the database).

A message that Telegram refused for now (flood control past the bounded wait, a
network or server error) is no such error: what the handler did stands (often a
committed change), so "please try again" would be wrong, and Telegram would
refuse it as well. The refused message is kept in the outbox instead and arrives
when Telegram takes it (ui/owed.py). (A call that cannot be made later, such as
a callback's answer, is reported as before.)
"""

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import ErrorEvent

from ui.i18n import Translator, translator
from ui.owed import REFUSED_FOR_NOW, OwedCalls

log = logging.getLogger(__name__)


async def on_error(
    event: ErrorEvent,
    t: Translator | None = None,
    owed: OwedCalls | None = None,
    bot: Bot | None = None,
) -> bool:
    error = event.exception
    if isinstance(error, REFUSED_FOR_NOW) and owed is not None and bot is not None:
        try:
            kept = await owed.keep(bot, error.method, error)
        except Exception:  # the error report itself must never raise
            log.exception("could not keep the refused call")
            kept = False
        if kept:
            log.warning("update %s: a refused call is kept: %s", event.update.update_id, error)
            return True
    log.exception("update %s failed", event.update.update_id, exc_info=error)
    update = event.update
    user = update.event.from_user if hasattr(update.event, "from_user") else None
    if t is None:  # the error came before our middleware chose the language
        t = translator("zh" if user and (user.language_code or "").startswith("zh") else "en")
    try:
        if update.callback_query is not None:
            try:
                await update.callback_query.answer(t("err.internal"), show_alert=True)
            except TelegramBadRequest:  # the handler had answered it already
                if update.callback_query.message is not None:
                    await update.callback_query.message.answer(t("err.internal"))
        elif update.message is not None:
            await update.message.answer(t("err.internal"))
    except Exception:  # the error report itself must never raise
        log.warning("could not tell the user about the error", exc_info=True)
    return True


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
