"""Callback queries: a person presses an inline button, the bot answers the query."""

from __future__ import annotations

import copy
import time
from typing import Any

from .protocol import QUERY_TOO_OLD, JsonDict, bad
from .records import Callback, buttons, plain, public
from .world import World


class Callbacks(World):
    """``press``/``press_button`` and ``answerCallbackQuery``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callbacks: dict[str, Callback] = {}
        self._callback_counter = 0

    # ------------------------------------------------------------------ acting as people

    def press(self, chat_id: int, user_id: int, message_id: int, callback_data: str) -> str:
        """The user presses an inline button; returns the callback query id.

        The ``callback_data`` is not checked against the keyboard, so tests can
        also forge stale or malicious data. The update carries the current state
        of the bot message.
        """
        chat, user = self._acting(chat_id, user_id)
        entry = chat.entry(message_id)
        if entry is None:
            raise AssertionError(f"chat {chat_id} has no (undeleted) message {message_id}")
        if entry.msg["from"]["id"] != self.bot_id:
            raise AssertionError(f"message {message_id} in chat {chat_id} is not the bot's")
        self._callback_counter += 1
        query_id = f"{self.bot_id}{self._callback_counter:012d}"
        query: JsonDict = {
            "id": query_id,
            "from": dict(user),
            "message": public(entry.msg),
            "chat_instance": str(abs(chat.id) * 7919 + self.bot_id),
            "data": callback_data,
        }
        self._callbacks[query_id] = Callback(query)
        self._enqueue("callback_query", query)
        return query_id

    def press_button(self, chat_id: int, user_id: int, message_id: int, text_contains: str) -> str:
        """Press the first inline button whose text contains ``text_contains``.

        Raises AssertionError listing the message's buttons if none matches (or
        the match is not a callback button).
        """
        chat = self._chat(chat_id)
        entry = chat.entry(message_id)
        if entry is None:
            raise AssertionError(f"chat {chat_id} has no (undeleted) message {message_id}")
        markup = entry.msg.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if text_contains in button["text"]:
                    if "callback_data" not in button:
                        raise AssertionError(
                            f"button {button['text']!r} of message {message_id} has no "
                            f"callback_data: {button}"
                        )
                    return self.press(chat_id, user_id, message_id, button["callback_data"])
        raise AssertionError(
            f"no inline button containing {text_contains!r} on message {message_id} in chat "
            f"{chat_id}; buttons: {buttons(entry.msg)}; text: {plain(entry.msg)!r}"
        )

    # ------------------------------------------------------------------ inspection

    def callback_answer(self, callback_query_id: str) -> JsonDict | None:
        """The ``answerCallbackQuery`` params for that query, or None if unanswered."""
        callback = self._callbacks.get(callback_query_id)
        if callback is None:
            raise KeyError(f"unknown callback query id {callback_query_id!r}")
        return copy.deepcopy(callback.answer)

    async def wait_for_callback_answer(
        self,
        callback_query_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain number is friendlier in tests
    ) -> JsonDict:
        """Wait until the bot answered that callback query; return the answer params."""
        if callback_query_id not in self._callbacks:
            raise KeyError(f"unknown callback query id {callback_query_id!r}")
        callback = self._callbacks[callback_query_id]
        deadline = time.monotonic() + timeout
        while callback.answer is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                chat_id = callback.query["message"]["chat"]["id"]
                raise AssertionError(
                    f"callback query {callback_query_id} (data={callback.query['data']!r}) "
                    f"was not answered within {timeout}s; recent history:\n"
                    f"{self.format_history(chat_id)}"
                )
            await self._wait_change(remaining)
        return copy.deepcopy(callback.answer)

    # ------------------------------------------------------------------ Bot API methods

    def _answer_callback_query(self, params: JsonDict) -> bool:
        callback = self._callbacks.get(str(params.get("callback_query_id") or ""))
        if callback is None or callback.answer is not None:
            raise bad(QUERY_TOO_OLD)
        answer = {key: value for key, value in params.items() if key != "callback_query_id"}
        answer.setdefault("text", None)
        answer.setdefault("show_alert", False)
        callback.answer = answer
        self._notify()
        return True
