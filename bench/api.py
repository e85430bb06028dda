"""The tests' local Bot API server, with a per-chat log of what the bot sent, so
virtual users wait for their own answers without scanning every chat."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.botapi import FakeBotAPI, plain

# what a bot does in a chat in answer to someone
WATCHED = {
    "sendMessage",
    "sendPhoto",
    "sendVenue",
    "sendLocation",
    "sendDocument",
    "editMessageText",
    "editMessageCaption",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
}


@dataclass
class Sent:
    at: float  # time.monotonic() when the server handled the request
    method: str
    params: dict[str, Any]
    result: Any

    @property
    def text(self) -> str:
        if self.method == "answerCallbackQuery":
            return str(self.params.get("text") or "")
        if isinstance(self.result, dict):
            return plain(self.result)
        return str(self.params.get("text") or self.params.get("caption") or "")

    def callback_data(self, contains: str = "") -> str | None:
        """The callback data of the first inline button whose label has ``contains``."""
        markup = self.result.get("reply_markup") if isinstance(self.result, dict) else None
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if contains in button.get("text", "") and "callback_data" in button:
                    return button["callback_data"]
        return None

    @property
    def message_id(self) -> int | None:
        return self.result.get("message_id") if isinstance(self.result, dict) else None


class BenchAPI(FakeBotAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: dict[int, list[Sent]] = defaultdict(list)
        self._chat_changed: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        for key, (name, handler) in list(self._methods.items()):
            if name in WATCHED:
                self._methods[key] = (name, self._watch(name, handler))

    def _watch(self, name: str, handler: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
        def wrapped(params: dict[str, Any]) -> Any:
            result = handler(params)
            if inspect.isawaitable(result):

                async def later() -> Any:
                    value = await result
                    self._record(name, params, value)
                    return value

                return later()
            self._record(name, params, result)
            return result

        return wrapped

    def _record(self, name: str, params: dict[str, Any], result: Any) -> None:
        if name == "answerCallbackQuery":
            callback = self._callbacks.get(str(params.get("callback_query_id")))
            if callback is None:
                return
            chat = int(callback.query["message"]["chat"]["id"])
        else:
            try:
                chat = int(params["chat_id"])
            except (KeyError, TypeError, ValueError):
                return
        self.sent[chat].append(Sent(time.monotonic(), name, params, result))
        event = self._chat_changed.pop(chat, None)
        if event is not None:
            event.set()

    def cursor(self, chat: int) -> int:
        return len(self.sent[chat])

    async def wait_sent(
        self,
        chat: int,
        predicate: Callable[[Sent], bool],
        cursor: int,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> tuple[Sent, int]:
        """The first thing the bot sent to ``chat`` at or after ``cursor`` that matches;
        returns it and the cursor after it."""
        deadline = time.monotonic() + timeout
        log = self.sent[chat]
        while True:
            while cursor < len(log):
                item = log[cursor]
                cursor += 1
                if predicate(item):
                    return item, cursor
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = [(s.method, s.text[:60]) for s in log[-5:]]
                raise TimeoutError(f"chat {chat}: nothing matching within {timeout}s: {recent}")
            event = self._chat_changed[chat]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def store_photo(self) -> str:
        """A stored photo's file id (as if a user had sent it), without an update."""
        import io

        from PIL import Image

        data = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 120, 40)).save(data, "PNG")
        return self._store_photo(data.getvalue())[-1]["file_id"]
