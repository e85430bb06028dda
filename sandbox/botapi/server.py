"""A local, in-process Telegram Bot API server (the sandbox's Telegram, and the tests').

``FakeBotAPI`` is a real HTTP server (aiohttp) that speaks the Bot API wire
protocol, so an unmodified aiogram ``Bot`` with
``AiohttpSession(api=TelegramAPIServer.from_base(server.url))`` talks to it exactly
as it would talk to api.telegram.org, long-polling ``getUpdates`` included. With a
webhook set (``setWebhook``), updates are POSTed to its URL instead, as Telegram does.

Tests play the users (``send_text``, ``press_button``, ``pay_invoice``, ...), which
queues updates for the bot, and then inspect what the bot did (``history``,
``wait_for_message``, ``callback_answer``, ``requests``).

The server is put together from one mixin per area, each over the shared
:class:`~.world.World` (users, chats, messages, the update queue):

=================  ==========================================================
``protocol``       errors, limits, how parameters are decoded
``entities``       ``parse_mode=HTML`` parsed like Telegram (text + entities)
``records``        the records kept, and ``plain``/``buttons`` readers
``world``          users, chats, messages, the update queue, waiting on changes
``messages``       people writing; sendMessage & co., edits, deleteMessage
``files``          photos and documents both ways, getFile, downloads
``callbacks``      pressing inline buttons, answerCallbackQuery
``commands``       setMyCommands & co.
``updates``        getUpdates (long polling) and webhook delivery
``payments``       sendInvoice, pre-checkout queries, successful payments
``faults``         scripted failures (``fail_next``)
``server``         this module: the HTTP app and the dispatch to the methods
=================  ==========================================================
"""

from __future__ import annotations

import inspect
import re
from typing import Self

from aiohttp import web
from aiohttp.web_request import FileField

from .callbacks import Callbacks
from .commands import Commands
from .entities import HtmlParseError, parse_html
from .faults import Faults
from .files import Files
from .payments import CURRENCIES, Payment, Payments
from .protocol import ApiError, JsonDict, bad, decode_value
from .records import Upload, buttons, plain, reply_buttons
from .updates import Updates
from .world import Handler

__all__ = [
    "CURRENCIES",
    "FakeBotAPI",
    "HtmlParseError",
    "Payment",
    "Upload",
    "buttons",
    "parse_html",
    "plain",
    "reply_buttons",
]

_API_PATH_RE = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[^/]+)/?$")
_FILE_PATH_RE = re.compile(r"^/file/bot(?P<token>[^/]+)/(?P<path>.+)$")


class FakeBotAPI(Updates, Files, Payments, Callbacks, Commands, Faults):
    """A local Telegram Bot API server with scriptable users, for tests.

    Usage::

        api = FakeBotAPI()
        await api.start()
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
        user = api.add_user(42, "Ann")
        api.send_text(42, 42, "/start")
        reply = await api.wait_for_message(42, lambda m: "Welcome" in plain(m))
        await api.stop()

    Private chat ids equal user ids, groups are supergroups with negative ids, and
    message ids are per chat, starting at 1. ``history()`` and friends return deep
    copies of the history records: Telegram ``Message`` dicts plus the internal
    keys ``deleted`` (True once deleted) and ``keyboard`` (the reply keyboard,
    removal or force-reply markup the bot sent, which Telegram does not echo back).
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_username: str = "chargeshare_test_bot",
        bot_id: int = 123456,
    ) -> None:
        """Create a stopped server for the bot with that token, username and id."""
        super().__init__(token=token, bot_username=bot_username, bot_id=bot_id)
        self._runner: web.AppRunner | None = None
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._ok,
            "close": self._ok,
            # updates
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            # commands
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            # messages
            "sendMessage": self._send_message,
            "sendLocation": self._send_location,
            "sendVenue": self._send_venue,
            "sendContact": self._send_contact,
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            # files
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            # callbacks
            "answerCallbackQuery": self._answer_callback_query,
            # payments
            "sendInvoice": self._send_invoice,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
        }
        self._methods.update({name.lower(): (name, handler) for name, handler in handlers.items()})

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one) and set ``url``."""
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads up to Telegram's 50MB
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a long poll whose client went away (stop_polling)
        # must not linger until its timeout.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._closing = False

    async def stop(self) -> None:
        """Stop the server; pending long polls return an empty result first."""
        self._closing = True
        self._notify()
        await self._stop_webhook_delivery()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ HTTP layer

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if match := _FILE_PATH_RE.match(request.path):
            return self._download(match["token"], match["path"])
        match = _API_PATH_RE.match(request.path)
        if match is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        if match["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)

        try:
            params = await self._read_params(request)
        except ApiError as error:
            return web.json_response(error.body(), status=error.error_code)

        method = match["method"]
        name, handler = self._methods.get(method.lower(), (method, None))
        polling = name == "getUpdates"
        if not polling:
            self.requests.append((name, params))
        if handler is None:
            missing = ApiError(404, "Not Found: method not found")
            return web.json_response(missing.body(), status=404)
        if (failure := self._take_failure(name, params)) is not None:
            return web.json_response(failure.body(), status=failure.error_code)

        if not polling:
            self._inflight += 1
            self._touch()
        try:
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as error:
            return web.json_response(error.body(), status=error.error_code)
        finally:
            if not polling:
                self._inflight -= 1
                self._touch()
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> JsonDict:
        """Decode query string + body (urlencoded, multipart or JSON) into typed params."""
        params: JsonDict = {key: decode_value(key, value) for key, value in request.query.items()}
        uploads: dict[str, Upload] = {}
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad("can't parse JSON body") from None
            if not isinstance(body, dict):
                raise bad("JSON body must be an object")
            params.update(body)
        elif request.body_exists:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, FileField):
                    uploads[key] = Upload(
                        filename=value.filename,
                        content_type=value.content_type,
                        data=value.file.read(),
                    )
                else:
                    params[key] = decode_value(key, str(value))
        # aiogram uploads every InputFile as `photo=attach://<random part name>`.
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                part = value.removeprefix("attach://")
                if part not in uploads:
                    raise bad(f"file {part!r} referenced by {key} was not uploaded")
                params[key] = uploads.pop(part)
        params.update(uploads)  # parts sent directly under the parameter's name
        return params

    # ------------------------------------------------------------------ API methods

    def _ok(self, params: JsonDict) -> bool:
        return True

    def _get_me(self, params: JsonDict) -> JsonDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
