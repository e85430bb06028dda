"""Messages that Telegram refused for now are kept in the outbox, not lost.

A handler's reply often follows a committed change (a booking requested, a
decision made). When Telegram still refuses it after the bounded wait for flood
control (bot.request_middlewares.WaitOutFloodControl), or a network or server
error stops it, the call is written to the outbox as it was made and the outbox
sender makes it once Telegram lets it: the person gets it late rather than never.
A call lost in the network may have reached Telegram, so this is at least once,
like the outbox itself.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    SendLocation,
    SendMessage,
    SendVenue,
)
from aiogram.methods.base import TelegramMethod

from services import outbox
from services.outbox import Notification
from services.tx import OpenDb

log = logging.getLogger(__name__)

T = TypeVar("T")

# Calls that mean the same later: messages and their edits. (An answer to a callback
# query expires within seconds; an uploaded file cannot be kept as JSON.)
REPLAYABLE: dict[str, type[TelegramMethod[Any]]] = {
    method.__name__: method
    for method in (SendMessage, SendLocation, SendVenue, EditMessageText, EditMessageReplyMarkup)
}
# Telegram did not (or may not have) taken the call, but would later
REFUSED_FOR_NOW = (TelegramRetryAfter, TelegramNetworkError, TelegramServerError)


def as_payload(bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any] | None:
    """The call as JSON, with the bot's defaults (parse mode) filled in; None when
    it cannot be made again later."""
    name = type(method).__name__
    if REPLAYABLE.get(name) is not type(method):
        return None
    defaults = {
        field: bot.default[value.name] for field, value in method if isinstance(value, Default)
    }
    params = method.model_copy(update=defaults).model_dump(mode="json", exclude_none=True)
    if not isinstance(params.get("chat_id"), int):  # an inline message or a @channel
        return None
    return {"method": name, "params": params}


class OwedCalls:
    """Keeps refused calls in the outbox; ``wake`` nudges the outbox sender."""

    def __init__(self, open_db: OpenDb, wake: Callable[[], None] | None = None) -> None:
        self._open_db = open_db
        self._wake = wake

    async def keep(self, bot: Bot, method: TelegramMethod[Any], error: TelegramAPIError) -> bool:
        """Write ``method`` to the outbox, due when flood control ends; False when it
        cannot be made later (see ``REPLAYABLE``)."""
        payload = as_payload(bot, method)
        if payload is None:
            return False
        delay = float(error.retry_after) if isinstance(error, TelegramRetryAfter) else 0.0
        chat_id = payload["params"]["chat_id"]
        await outbox.owe_call(self._open_db, chat_id, delay, payload)
        log.warning(
            "%s to %s refused for now (%s): kept in the outbox", payload["method"], chat_id, error
        )
        if self._wake is not None:
            self._wake()
        return True

    async def deliver(self, method: TelegramMethod[T]) -> T | None:
        """Make a call (bound to a bot, as ``message.answer(...)`` returns it) that
        must reach the person: if Telegram refuses it for now, it is kept in the
        outbox and None is returned."""
        try:
            return await method
        except REFUSED_FOR_NOW as error:
            if method.bot is None or not await self.keep(method.bot, method, error):
                raise
            return None


async def replay(bot: Bot, message: Notification) -> None:
    """The outbox's renderer of a kept call: make it as it was made."""
    method = REPLAYABLE[message.payload["method"]].model_validate(message.payload["params"])
    await bot(method)
