"""Middlewares around every Bot API request the bot makes."""

from typing import Any, ClassVar

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import EditMessageCaption, EditMessageReplyMarkup, EditMessageText
from aiogram.methods.base import Response, TelegramMethod, TelegramType

_EDITS = (EditMessageText, EditMessageCaption, EditMessageReplyMarkup)


class KeepResponseModels(BaseRequestMiddleware):
    """Keeps each ``Response[...]`` model aiogram parses answers with alive.

    aiogram builds ``Response[<method's result type>]`` on every call; pydantic
    caches generic models by weak reference, so after each garbage collection
    the next call rebuilt the model: about 7 ms of CPU, a quarter of the bot's
    time in the bench (docs/benchmarks.md). A strong reference per result type
    keeps the cache hit (about 2 us).
    """

    _models: ClassVar[dict[type, Any]] = {}  # shared by every bot of the process

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._models:
            self._models[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


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
