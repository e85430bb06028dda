"""Errors of every handler, in one place.

A refusal of the domain (``DomainError``: bad input, not allowed, gone, a device
that did not answer) is what the person is told (ui/errors.py words it): a pressed
button gets an alert, a message a reply; the conversation stays where it was.

Anything else is the last line: the error is logged, and the person is told that
what they typed is kept (the FSM data lives in the database).

A message that Telegram refused for now (flood control past the bounded wait, a
network or server error) is no such error: what the handler did stands (often a
committed change), so "please try again" would be wrong, and Telegram would
refuse it as well. The refused message is kept in the outbox instead and arrives
when Telegram takes it (ui/owed.py). (A call that cannot be made later, such as
a callback's answer, is reported as before.)
"""

import contextlib
import logging
from collections.abc import Container

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import CallbackQuery, ErrorEvent, Message, Update

from services.clock import utcnow
from services.errors import DomainError
from ui.config import Config
from ui.errors import Refusal, refusal
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
    t = t or _their_language(update)
    try:
        if update.callback_query is not None:
            try:
                await update.callback_query.answer(t("err.internal"), show_alert=True)
            except TelegramBadRequest:  # the handler had answered it already
                if update.callback_query.message is not None:
                    await update.callback_query.message.answer(t("err.internal"))
        elif update.pre_checkout_query is not None:  # nothing is charged
            await update.pre_checkout_query.answer(ok=False, error_message=t("err.internal"))
        elif update.message is not None:
            await update.message.answer(t("err.internal"))
    except Exception:  # the error report itself must never raise
        log.warning("could not tell the user about the error", exc_info=True)
    return True


# Telegram shows at most this much of a callback query's alert
ALERT_LIMIT = 200


async def on_refusal(
    event: ErrorEvent,
    config: Config,
    t: Translator | None = None,
    answered: Container[str] = (),
) -> bool:
    assert isinstance(event.exception, DomainError)
    update = event.update
    said = refusal(t or _their_language(update), event.exception, config.zone, utcnow())
    if update.callback_query is not None:
        query = update.callback_query
        await _tell_presser(query, said, answered=query.id in answered)
    elif update.pre_checkout_query is not None:
        # the payment form shows the reason; no money moves
        await update.pre_checkout_query.answer(ok=False, error_message=said.text)
    elif update.message is not None:
        message = update.message
        if message.chat.type == "private":
            await message.answer(said.text, reply_markup=said.markup)
        else:  # in a group: to the one who wrote
            await message.reply(said.text, reply_markup=said.markup)
    return True


async def _tell_presser(query: CallbackQuery, said: Refusal, *, answered: bool) -> None:
    """An alert; or, when the handler had answered the press already (a stop being
    carried out, a start switching on) or the refusal offers a way on (Start
    again), the pressed message's text. A text too long for an alert, or a press
    answered elsewhere (delivered twice), gets a message of its own."""
    if said.in_place or answered:
        with contextlib.suppress(TelegramBadRequest):  # answered already
            await query.answer()
        if isinstance(query.message, Message):
            try:
                await query.message.edit_text(said.text, reply_markup=said.markup)
                return
            except TelegramBadRequest:  # a photo's caption, or gone: say it below
                pass
    elif not said.as_message and len(said.text) <= ALERT_LIMIT:
        try:
            await query.answer(said.text, show_alert=True)
            return
        except TelegramBadRequest:  # answered elsewhere: say it below
            pass
    else:
        with contextlib.suppress(TelegramBadRequest):
            await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(said.text, reply_markup=said.markup)
    else:
        assert query.bot is not None
        await query.bot.send_message(query.from_user.id, said.text, reply_markup=said.markup)


def _their_language(update: Update) -> Translator:
    """When the error came before our middleware chose the language."""
    user = update.event.from_user if hasattr(update.event, "from_user") else None
    return translator("zh" if user and (user.language_code or "").startswith("zh") else "en")


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_refusal, ExceptionTypeFilter(DomainError))
    router.errors.register(on_error)
    return router
