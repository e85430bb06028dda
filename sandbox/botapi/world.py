"""The world the bot lives in: its users, chats and their messages, the queue of
updates waiting for the bot, and the change counter every wait is built on.

:class:`World` is the base of every area of the server (``messages``, ``files``,
``callbacks``, ``updates``, ``payments``, ...): each area is a mixin that adds its
Bot API methods and its test helpers over this shared state, and
:class:`~sandbox.botapi.server.FakeBotAPI` puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable
from typing import Any

from .protocol import JsonDict, MessagePredicate
from .records import Chat, Entry, buttons, plain, public, reply_buttons

# Message contents that format_history names (a text or caption is shown anyway).
_KINDS = ("photo", "document", "location", "venue", "contact", "invoice", "successful_payment")

#: A Bot API method: decoded params in, the ``result`` out (or an awaitable of it).
Handler = Callable[[JsonDict], Any]


class World:
    """Users, chats, messages and the update queue, with the bookkeeping around them.

    Private chat ids equal user ids, groups are supergroups with negative ids, and
    message ids are per chat, starting at 1.
    """

    def __init__(
        self,
        *,
        token: str = "123456:TEST-token",
        bot_username: str = "chargeshare_test_bot",
        bot_id: int = 123456,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_user: JsonDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "ChargeShare Test Bot",
            "username": bot_username,
        }
        self.url = ""
        #: Every API call the bot made, decoded: (method name, params). Uploaded
        #: files appear as :class:`Upload`. ``getUpdates`` polls are not logged.
        self.requests: list[tuple[str, JsonDict]] = []
        #: The Bot API methods served: lower-case name -> (name, handler); Telegram
        #: matches method names case-insensitively. Filled by ``FakeBotAPI``.
        self._methods: dict[str, tuple[str, Handler]] = {}

        self._users: dict[int, JsonDict] = {}
        self._chats: dict[int, Chat] = {}
        self._blocked: set[int] = set()

        self._updates: list[JsonDict] = []  # queued, not yet confirmed by an offset
        self._last_update_id = 0

        self._seq = 0  # global change counter, see Entry
        self._changed = asyncio.Event()
        self._inflight = 0  # API requests (and webhook POSTs) being served
        self._last_activity = time.monotonic()
        self._closing = False

    # ------------------------------------------------------------------ registry

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        language_code: str = "en",
        username: str | None = None,
    ) -> JsonDict:
        """Register a user (and their private chat with the bot); return the User dict."""
        if user_id <= 0:
            raise ValueError("user ids must be positive")
        user: JsonDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        chat_info: JsonDict = {"id": user_id, "type": "private", "first_name": first_name}
        if username:
            user["username"] = username
            chat_info["username"] = username
        self._users[user_id] = user
        if user_id in self._chats:
            self._chats[user_id].info = chat_info
        else:
            self._chats[user_id] = Chat(chat_info)
        return dict(user)

    def add_group(self, chat_id: int, title: str) -> JsonDict:
        """Register a supergroup (``chat_id`` must be negative); return the Chat dict."""
        if chat_id >= 0:
            raise ValueError("group chat ids must be negative")
        info: JsonDict = {"id": chat_id, "type": "supergroup", "title": title}
        if chat_id in self._chats:
            self._chats[chat_id].info = info
        else:
            self._chats[chat_id] = Chat(info)
        return dict(info)

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """Make the user block (or unblock) the bot: sends then fail with 403."""
        self._user(user_id)
        if blocked:
            self._blocked.add(user_id)
        else:
            self._blocked.discard(user_id)

    # ------------------------------------------------------------------ inspection

    def history(self, chat_id: int) -> list[JsonDict]:
        """Every message of the chat in order, current state, deleted ones included."""
        return [copy.deepcopy(entry.msg) for entry in self._chat(chat_id).entries]

    def bot_messages(self, chat_id: int) -> list[JsonDict]:
        """The bot's messages in the chat, excluding deleted ones."""
        return [
            copy.deepcopy(entry.msg)
            for entry in self._chat(chat_id).entries
            if entry.msg["from"]["id"] == self.bot_id and not entry.msg.get("deleted")
        ]

    def last_message_id(self, chat_id: int) -> int:
        """Id of the newest message in the chat (0 if empty): a handy ``after=`` cursor."""
        return len(self._chat(chat_id).entries)

    def reply_keyboard(self, chat_id: int) -> list[list[str]]:
        """Texts of the reply keyboard the user currently sees in the chat."""
        keyboard = self._chat(chat_id).keyboard
        return reply_buttons({"keyboard": keyboard}) if keyboard else []

    def calls(self, method: str) -> list[JsonDict]:
        """Params of every logged call of ``method`` (case-insensitive)."""
        return [params for name, params in self.requests if name.lower() == method.lower()]

    def format_history(self, chat_id: int, limit: int = 15) -> str:
        """A readable dump of the chat's last ``limit`` messages (for assertion errors)."""
        lines = []
        for entry in self._chat(chat_id).entries[-limit:]:
            msg = entry.msg
            who = "bot" if msg["from"]["id"] == self.bot_id else msg["from"].get("first_name")
            kind = next(
                (k for k in _KINDS if k in msg),
                "",
            )
            line = f"  #{msg['message_id']} [{who}]{f' <{kind}>' if kind else ''} {plain(msg)!r}"
            if inline := buttons(msg):
                line += f" buttons={inline}"
            if keyboard := reply_buttons(msg):
                line += f" keyboard={keyboard}"
            if "edit_date" in msg:
                line += " (edited)"
            if msg.get("deleted"):
                line += " (deleted)"
            lines.append(line)
        return "\n".join(lines) or "  (no messages)"

    @property
    def version(self) -> int:
        """A counter that grows whenever a message is added, edited or deleted."""
        return self._seq

    async def wait_for_change(self, since: int, timeout: float) -> int:  # noqa: ASYNC109
        """Wait until :attr:`version` differs from ``since`` (or ``timeout``); return it."""
        deadline = time.monotonic() + timeout
        while self._seq == since and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._wait_change(remaining)
        return self._seq

    def keyboard_markup(self, chat_id: int) -> JsonDict | None:
        """The reply keyboard markup the user currently sees in the chat, as the bot sent it."""
        keyboard = self._chat(chat_id).keyboard
        return copy.deepcopy(keyboard) if keyboard else None

    def chat_info(self, chat_id: int) -> JsonDict:
        """The Chat dict of a registered chat."""
        return dict(self._chat(chat_id).info)

    def user_info(self, user_id: int) -> JsonDict:
        """The User dict of a registered user."""
        return dict(self._user(user_id))

    # ------------------------------------------------------------------ waiting

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: MessagePredicate | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain number is friendlier in tests
        after: int = 0,
    ) -> JsonDict:
        """Wait for a bot message in the chat that matches ``predicate``.

        Candidates are the bot's undeleted messages with ``message_id > after``
        and older ones edited after message ``after`` was sent, checked in
        message-id order; the first match is returned (a deep copy). Raises
        AssertionError with the chat's recent history on timeout.
        """
        chat = self._chat(chat_id)
        # Edits count only if they happened after message `after` was sent.
        newest_seen = min(after, len(chat.entries))
        since = chat.entries[newest_seen - 1].created if newest_seen > 0 else 0
        deadline = time.monotonic() + timeout
        while True:
            for entry in chat.entries:
                msg = entry.msg
                if msg["from"]["id"] != self.bot_id or msg.get("deleted"):
                    continue
                if msg["message_id"] <= after and entry.edited <= since:
                    continue
                snapshot = copy.deepcopy(msg)
                if predicate is None or predicate(snapshot):
                    return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                wanted = "a message" if predicate is None else "a message matching the predicate"
                raise AssertionError(
                    f"the bot sent/edited no {wanted} in chat {chat_id} (after #{after}) "
                    f"within {timeout}s; recent history:\n{self.format_history(chat_id)}"
                )
            await self._wait_change(remaining)

    # ------------------------------------------------------------------ bookkeeping

    def _notify(self) -> None:
        """Wake every waiter (long polls, wait_* helpers); they re-check their condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:  # noqa: ASYNC109
        # No await happens between a caller's check and this wait, so no change is missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _touch(self) -> None:
        self._last_activity = time.monotonic()
        self._notify()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _user(self, user_id: int) -> JsonDict:
        user = self._users.get(user_id)
        if user is None:
            raise KeyError(f"user {user_id} is not registered; call add_user() first")
        return user

    def _chat(self, chat_id: int) -> Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"chat {chat_id} is not registered; call add_user()/add_group()")
        return chat

    def _acting(self, chat_id: int, user_id: int) -> tuple[Chat, JsonDict]:
        user = self._user(user_id)
        chat = self._chat(chat_id)
        if chat.info["type"] == "private" and chat_id != user_id:
            raise ValueError(f"user {user_id} cannot write in the private chat of {chat_id}")
        return chat, user

    def _enqueue(self, kind: str, payload: JsonDict) -> None:
        self._last_update_id += 1
        self._updates.append({"update_id": self._last_update_id, kind: copy.deepcopy(payload)})
        self._touch()

    def _user_message(
        self, chat: Chat, user: JsonDict, content: JsonDict, *, reply_to: JsonDict | None = None
    ) -> JsonDict:
        msg = self._add_message(chat, dict(user), content, reply_to=reply_to)
        self._enqueue("message", public(msg))
        return copy.deepcopy(msg)

    def _add_message(
        self,
        chat: Chat,
        sender: JsonDict,
        content: JsonDict,
        *,
        reply_to: JsonDict | None = None,
        inline_markup: JsonDict | None = None,
        keyboard: JsonDict | None = None,
    ) -> JsonDict:
        msg: JsonDict = {
            "message_id": len(chat.entries) + 1,
            "from": sender,
            "chat": dict(chat.info),
            "date": int(time.time()),
        }
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        msg.update({key: value for key, value in content.items() if value not in (None, [], "")})
        if inline_markup is not None:
            msg["reply_markup"] = inline_markup
        if keyboard is not None:
            msg["keyboard"] = keyboard
            if "keyboard" in keyboard:
                chat.keyboard = keyboard
            elif keyboard.get("remove_keyboard"):
                chat.keyboard = None
        chat.entries.append(Entry(msg, self._next_seq()))
        self._notify()
        return msg

    @staticmethod
    def _reply_snapshot(msg: JsonDict) -> JsonDict:
        snapshot = public(msg)
        snapshot.pop("reply_to_message", None)  # Telegram nests only one level
        return snapshot
