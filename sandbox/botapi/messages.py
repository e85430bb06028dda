"""Messages both ways: people write (``send_text``, ``send_location``, ...) and the bot
sends, edits and deletes (``sendMessage``, ``editMessageText``, ``deleteMessage``, ...).

``parse_mode=HTML`` is parsed like Telegram's own parser (see :mod:`.entities`): the
stored and returned message has the *visible* text plus ``entities``. Markdown modes
are accepted but not parsed (the text is stored verbatim). Telegram does not echo
reply keyboards back in ``Message`` objects, so the record keeps the markup the bot
sent under the internal ``keyboard`` key.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from .entities import HtmlParseError, parse_html, trim, utf16_len
from .protocol import (
    CALLBACK_DATA_LIMIT,
    CAPTION_LIMIT,
    NOT_MODIFIED,
    TEXT_LIMIT,
    ApiError,
    JsonDict,
    bad,
    float_param,
    int_param,
    str_param,
)
from .records import Chat, Entry, public
from .world import World

# Telegram's inline keyboard buttons must carry exactly one action.
_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "callback_game",
        "copy_text",
        "login_url",
        "pay",
        "switch_inline_query",
        "switch_inline_query_chosen_chat",
        "switch_inline_query_current_chat",
        "url",
        "web_app",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


class Messages(World):
    """Sending, editing and deleting messages; people writing to the bot."""

    # ------------------------------------------------------------------ acting as people

    def send_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to_message_id: int | None = None,
    ) -> JsonDict:
        """The user sends ``text`` to the chat; queues a ``message`` update.

        A leading ``/command`` (also ``/command@botname``) gets a ``bot_command``
        entity, like Telegram clients produce.
        """
        chat, user = self._acting(chat_id, user_id)
        content: JsonDict = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        reply_to = None
        if reply_to_message_id is not None:
            target = chat.entry(reply_to_message_id)
            if target is None:
                raise ValueError(f"chat {chat_id} has no message {reply_to_message_id}")
            reply_to = self._reply_snapshot(target.msg)
        return self._user_message(chat, user, content, reply_to=reply_to)

    def send_contact(
        self,
        chat_id: int,
        user_id: int,
        phone_number: str,
        first_name: str,
        *,
        contact_user_id: int | None = None,
    ) -> JsonDict:
        """The user shares a contact (pass ``contact_user_id=user_id`` for "share my phone")."""
        chat, user = self._acting(chat_id, user_id)
        contact: JsonDict = {"phone_number": phone_number, "first_name": first_name}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self._user_message(chat, user, {"contact": contact})

    def send_location(
        self, chat_id: int, user_id: int, latitude: float, longitude: float
    ) -> JsonDict:
        """The user shares a location."""
        chat, user = self._acting(chat_id, user_id)
        location = {"latitude": latitude, "longitude": longitude}
        return self._user_message(chat, user, {"location": location})

    def send_venue(
        self,
        chat_id: int,
        user_id: int,
        latitude: float,
        longitude: float,
        title: str,
        address: str,
    ) -> JsonDict:
        """The user shares a venue (Telegram sets both ``venue`` and ``location``)."""
        chat, user = self._acting(chat_id, user_id)
        location = {"latitude": latitude, "longitude": longitude}
        venue = {"location": dict(location), "title": title, "address": address}
        return self._user_message(chat, user, {"venue": venue, "location": location})

    # ------------------------------------------------------------------ Bot API methods

    def _send_message(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        text, entities = self._formatted(params, "text", "entities", TEXT_LIMIT)
        if not text:
            raise bad("message text is empty")
        return self._bot_send(params, {"text": text, "entities": entities}, chat)

    def _send_location(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        location = {
            "latitude": float_param(params, "latitude"),
            "longitude": float_param(params, "longitude"),
        }
        return self._bot_send(params, {"location": location}, chat)

    def _send_venue(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        location = {
            "latitude": float_param(params, "latitude"),
            "longitude": float_param(params, "longitude"),
        }
        venue = {
            "location": dict(location),
            "title": str_param(params, "title"),
            "address": str_param(params, "address"),
        }
        return self._bot_send(params, {"venue": venue, "location": location}, chat)

    def _send_contact(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        contact: JsonDict = {
            "phone_number": str_param(params, "phone_number"),
            "first_name": str_param(params, "first_name"),
        }
        if params.get("last_name"):
            contact["last_name"] = str(params["last_name"])
        return self._bot_send(params, {"contact": contact}, chat)

    def _send_chat_action(self, params: JsonDict) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        return True

    def _edit_message_text(self, params: JsonDict) -> JsonDict:
        _, entry = self._editable(params)
        if "text" not in entry.msg:
            raise bad("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", TEXT_LIMIT)
        if not text:
            raise bad("message text is empty")
        markup = self._edit_markup(params)
        return self._commit_edit(entry, {"text": text, "entities": entities}, markup)

    def _edit_message_caption(self, params: JsonDict) -> JsonDict:
        _, entry = self._editable(params)
        if not any(kind in entry.msg for kind in ("photo", "document")):
            raise bad("there is no caption in the message to edit")
        caption, entities = self._formatted(params, "caption", "caption_entities", CAPTION_LIMIT)
        markup = self._edit_markup(params)
        return self._commit_edit(entry, {"caption": caption, "caption_entities": entities}, markup)

    def _edit_message_reply_markup(self, params: JsonDict) -> JsonDict:
        _, entry = self._editable(params)
        return self._commit_edit(entry, {}, self._edit_markup(params))

    def _delete_message(self, params: JsonDict) -> bool:
        chat = self._target_chat(params)
        entry = chat.entry(int_param(params, "message_id") or 0)
        if entry is None:
            raise bad("message to delete not found")
        entry.msg["deleted"] = True
        entry.edited = self._next_seq()
        self._notify()
        return True

    # ------------------------------------------------------------------ method helpers

    def _target_chat(self, params: JsonDict) -> Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad("chat_id is empty")
        chat: Chat | None = None
        if isinstance(raw, int) or (isinstance(raw, str) and re.fullmatch(r"-?\d+", raw)):
            chat = self._chats.get(int(raw))
        elif isinstance(raw, str) and raw.startswith("@"):
            chat = next(
                (c for c in self._chats.values() if c.info.get("username") == raw[1:]), None
            )
        if chat is None:
            raise bad("chat not found")
        if chat.id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _formatted(
        self, params: JsonDict, key: str, entities_key: str, limit: int
    ) -> tuple[str, list[JsonDict]]:
        """Visible text and entities of a text/caption parameter, as Telegram stores it."""
        raw = params.get(key)
        text = "" if raw is None else str(raw)
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            try:
                text, entities = parse_html(text, self._users)
            except HtmlParseError as error:
                raise bad(f"can't parse entities: {error}") from None
        elif mode.lower() in ("", "markdown", "markdownv2"):
            # Markdown is stored verbatim: this fake only implements Telegram's HTML.
            entities = list(params.get(entities_key) or []) if not mode else []
        else:
            raise bad("unsupported parse_mode")
        text, entities = trim(text, entities)
        if utf16_len(text) > limit:
            raise bad("message is too long" if key == "text" else "message caption is too long")
        return text, entities

    def _reply_to(self, chat: Chat, params: JsonDict) -> JsonDict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id = int_param(reply, "message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply"))
            if reply.get("chat_id") not in (None, chat.id):
                chat = self._target_chat({"chat_id": reply["chat_id"]})
        else:
            message_id = int_param(params, "reply_to_message_id")
            allow_missing = bool(params.get("allow_sending_without_reply"))
        if message_id is None:
            return None
        target = chat.entry(message_id)
        if target is None:
            if allow_missing:
                return None
            raise bad("message to be replied not found")
        return self._reply_snapshot(target.msg)

    @staticmethod
    def _check_inline_keyboard(markup: JsonDict) -> JsonDict:
        rows = markup.get("inline_keyboard")
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad('can\'t parse inline keyboard: field "inline_keyboard" must be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad("can't parse inline keyboard button: Text must be non-empty")
                if not _BUTTON_ACTIONS & button.keys():
                    raise bad(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise bad("BUTTON_DATA_INVALID")
        return markup

    def _send_markup(self, params: JsonDict) -> tuple[JsonDict | None, JsonDict | None]:
        """(inline markup for the Message, other markup kept internally) of a send."""
        markup = params.get("reply_markup")
        if markup is None:
            return None, None
        if not isinstance(markup, dict):
            raise bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return self._check_inline_keyboard(markup), None
        if "keyboard" in markup or markup.get("remove_keyboard") or markup.get("force_reply"):
            return None, markup
        raise bad("can't parse reply keyboard markup JSON object")

    def _edit_markup(self, params: JsonDict) -> JsonDict | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None  # like Telegram, an edit without reply_markup removes the keyboard
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            raise bad("inline keyboard expected")
        if not markup["inline_keyboard"]:
            return None
        return self._check_inline_keyboard(markup)

    def _bot_send(self, params: JsonDict, content: JsonDict, chat: Chat | None = None) -> JsonDict:
        chat = chat or self._target_chat(params)
        inline, keyboard = self._send_markup(params)
        reply_to = self._reply_to(chat, params)
        msg = self._add_message(
            chat,
            dict(self.bot_user),
            content,
            reply_to=reply_to,
            inline_markup=inline,
            keyboard=keyboard,
        )
        return public(msg)

    def _editable(self, params: JsonDict) -> tuple[Chat, Entry]:
        if params.get("inline_message_id"):
            raise bad("MESSAGE_ID_INVALID (inline messages are not supported by FakeBotAPI)")
        chat = self._target_chat(params)
        entry = chat.entry(int_param(params, "message_id") or 0)
        if entry is None:
            raise bad("message to edit not found")
        if entry.msg["from"]["id"] != self.bot_id:
            raise bad("message can't be edited")
        return chat, entry

    def _commit_edit(self, entry: Entry, content: JsonDict, markup: JsonDict | None) -> JsonDict:
        msg = entry.msg

        def normalized(value: Any) -> Any:
            return None if value in (None, [], "") else value

        unchanged = all(
            normalized(msg.get(key)) == normalized(value) for key, value in content.items()
        ) and normalized(msg.get("reply_markup")) == normalized(markup)
        if unchanged:
            raise bad(NOT_MODIFIED)
        for key, value in {**content, "reply_markup": markup}.items():
            if normalized(value) is None:
                msg.pop(key, None)
            else:
                msg[key] = copy.deepcopy(value)
        msg["edit_date"] = int(time.time())
        entry.edited = self._next_seq()
        self._notify()
        return public(msg)
