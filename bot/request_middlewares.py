"""Middlewares around every Bot API request the bot makes."""

import asyncio
import logging
from typing import Any, ClassVar, cast

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
)
from aiogram.methods.base import Response, TelegramMethod, TelegramType

from services.lru import Lru

_EDITS = (EditMessageText, EditMessageCaption, EditMessageReplyMarkup)

log = logging.getLogger(__name__)


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
                return cast(Response[TelegramType], True)
            raise


class WaitOutFloodControl(BaseRequestMiddleware):
    """Honours flood control (429 with ``retry_after``) on every call: waits as long
    as Telegram asks and tries again, at most ``retries`` times and ``max_wait``
    seconds in all, so a handler never hangs for minutes; past that the error goes
    up (handlers/errors.py then keeps a refused message in the outbox).

    Only 429s are retried: Telegram did not execute the call. A network error is
    not, since the call may have gone through and a retried send would duplicate.
    """

    def __init__(self, *, retries: int = 2, max_wait: float = 10.0) -> None:
        self.retries = retries
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        waited = 0.0
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                wait = float(error.retry_after)
                if attempt >= self.retries or waited + wait > self.max_wait:
                    raise
                attempt += 1
                waited += wait
                log.warning(
                    "flood control on %s: retry %s in %ss", method.__api_method__, attempt, wait
                )
                await asyncio.sleep(wait)


class AnsweredPresses(BaseRequestMiddleware):
    """The button presses (callback queries) this process has answered, the last
    ``size`` of them. A press takes one answer: a refusal raised after its handler
    answered it (a stop being carried out, a start switching on) takes the place of
    the pressed message's text instead (handlers/errors.py); one answered elsewhere
    (the same update delivered again to another instance) gets no such edit."""

    def __init__(self, size: int = 10_000) -> None:
        self._ids: Lru[str, bool] = Lru(size)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        response = await make_request(bot, method)
        if isinstance(method, AnswerCallbackQuery):
            self._ids.put(method.callback_query_id, True)
        return response

    def __contains__(self, query_id: object) -> bool:
        return isinstance(query_id, str) and self._ids.get(query_id) is not None
