"""Middlewares around every Bot API request the bot makes."""

from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import EditMessageCaption, EditMessageReplyMarkup, EditMessageText
from aiogram.methods.base import Response, TelegramMethod, TelegramType

_EDITS = (EditMessageText, EditMessageCaption, EditMessageReplyMarkup)


class NotModifiedIsSuccess(BaseRequestMiddleware):
    """An edit to what the message already shows (a double tap, a retried
    refresh) is what we wanted: Telegram's "message is not modified" is success."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as error:
            if isinstance(method, _EDITS) and "message is not modified" in error.message:
                # the chain passes results, not envelopes: edits return True for
                # messages they cannot return, so callers already accept it
                result: Any = True
                return result
            raise
