"""The last line: an error in a handler is logged, and the person is told that
what they typed is kept (the FSM data lives in the database)."""

import logging

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import ErrorEvent

from bot.i18n import Translator, translator
from bot.metrics import Metrics

log = logging.getLogger(__name__)


async def on_error(
    event: ErrorEvent, t: Translator | None = None, metrics: Metrics | None = None
) -> bool:
    log.exception("update %s failed", event.update.update_id, exc_info=event.exception)
    if metrics is not None:
        metrics.errors.inc()
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
