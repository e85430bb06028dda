"""End-to-end tests of the fake Bot API server with a real aiogram Bot and Dispatcher."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router, html
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    SuccessfulPayment,
)
from aiohttp import web
from PIL import Image

from tests.botapi import FakeBotAPI, buttons, parse_html, plain, reply_buttons
from tests.support.waiting import wait_until

ANN = 1001
BOB = 1002
GROUP = -100500


def make_router() -> Router:
    """A tiny bot: /start with an inline keyboard, photo round-trip, ping callback, echo."""
    router = Router(name="fake-botapi-test")

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text="🏓 Ping", callback_data="ping")],
                [InlineKeyboardButton(text="Docs", url="https://example.com/docs")],
            ]
        )
        name = html.quote(message.from_user.first_name)
        await message.answer(f"Hello, <b>{name}</b>!", reply_markup=keyboard)

    @router.message(Command("help"))
    async def help_command(message: Message) -> None:
        await message.answer("Use /start &amp; enjoy")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo is not None
        largest = message.photo[-1]
        downloaded = await bot.download(largest)
        assert downloaded is not None
        payload = downloaded.read()
        await message.answer_photo(largest.file_id, caption=f"got <b>{len(payload)}</b> bytes")
        await message.answer_photo(BufferedInputFile(payload, "copy.png"), caption="re-uploaded")

    @router.callback_query(F.data == "ping")
    async def ping(callback: CallbackQuery) -> None:
        await callback.answer("Pong!", show_alert=True)
        assert isinstance(callback.message, Message)
        await callback.message.edit_text("Pinged ✅")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        assert message.text is not None
        await message.reply(html.quote(message.text))

    return router


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI()
    await server.start()
    server.add_user(ANN, "Ann", username="ann")
    server.add_user(BOB, "Bob <Builder>", language_code="ru")
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    bot = Bot(api.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield bot
    await bot.session.close()


@pytest.fixture
async def polling(api: FakeBotAPI, bot: Bot) -> AsyncIterator[Dispatcher]:
    """A Dispatcher with :func:`make_router` long-polling the fake server."""
    dp = Dispatcher()
    dp.include_router(make_router())
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
    await api.wait_for_poller()
    yield dp
    await dp.stop_polling()
    await task


# --------------------------------------------------------------------------- raw HTTP


async def test_raw_http_contract(api: FakeBotAPI) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.url}/bot{api.token}/getme") as resp:
            body = await resp.json()
            assert resp.status == 200
            assert body["ok"] is True
            assert body["result"]["is_bot"] is True
            assert body["result"]["username"] == "chargeshare_test_bot"

        async with http.post(f"{api.url}/bot{api.token}/frobnicate") as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }

        async with http.post(f"{api.url}/bot1:wrong/getMe") as resp:
            assert resp.status == 401
            assert (await resp.json())["description"] == "Unauthorized"

        # JSON bodies are accepted too, like on the real server.
        async with http.post(
            f"{api.url}/bot{api.token}/sendMessage", json={"chat_id": ANN, "text": "<i>hi</i>"}
        ) as resp:
            result = (await resp.json())["result"]
            assert result["text"] == "<i>hi</i>"  # no parse_mode: stored verbatim

        async with http.get(f"{api.url}/file/bot{api.token}/photos/missing.jpg") as resp:
            assert resp.status == 404


async def test_wrong_token_is_unauthorized(api: FakeBotAPI) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    bot = Bot("42:other-token", session=session)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()
    finally:
        await bot.session.close()


# --------------------------------------------------------------------------- polling


async def test_command_echo_and_html(api: FakeBotAPI, polling: Dispatcher) -> None:
    api.send_text(ANN, ANN, "/start")
    welcome = await api.wait_for_message(ANN, lambda m: "Hello" in plain(m))
    assert plain(welcome) == "Hello, Ann!"
    assert welcome["entities"] == [{"type": "bold", "offset": 7, "length": 3}]
    assert welcome["from"]["is_bot"] is True
    assert buttons(welcome) == [["🏓 Ping"], ["Docs"]]

    sent = api.send_text(ANN, ANN, "a <b> & c")
    echo = await api.wait_for_message(ANN, after=sent["message_id"])
    assert plain(echo) == "a <b> & c"  # html.quote + parsing round-trips
    assert echo["reply_to_message"]["message_id"] == sent["message_id"]

    api.send_text(ANN, ANN, "/help@chargeshare_test_bot")
    help_msg = await api.wait_for_message(ANN, lambda m: "enjoy" in plain(m))
    assert plain(help_msg) == "Use /start & enjoy"

    await api.wait_idle()
    assert api.pending_updates == 0
    assert api.update_count() == 0
    senders = [msg["from"]["id"] for msg in api.history(ANN)]
    assert senders == [ANN, api.bot_id, ANN, api.bot_id, ANN, api.bot_id]
    assert [name for name, _ in api.requests].count("sendMessage") == 3


async def test_group_command_with_mention(api: FakeBotAPI, polling: Dispatcher) -> None:
    api.add_group(GROUP, "Chargers")
    api.send_text(GROUP, BOB, "/start@chargeshare_test_bot")
    welcome = await api.wait_for_message(GROUP)
    assert welcome["chat"] == {"id": GROUP, "type": "supergroup", "title": "Chargers"}
    assert plain(welcome) == "Hello, Bob <Builder>!"
    assert api.bot_messages(BOB) == []


async def test_callback_alert_and_edit(api: FakeBotAPI, bot: Bot, polling: Dispatcher) -> None:
    api.send_text(ANN, ANN, "/start")
    welcome = await api.wait_for_message(ANN, lambda m: bool(buttons(m)))

    query_id = api.press_button(ANN, ANN, welcome["message_id"], "Ping")
    answer = await api.wait_for_callback_answer(query_id)
    assert answer["text"] == "Pong!"
    assert answer["show_alert"] is True
    assert api.callback_answer(query_id) == answer

    edited = await api.wait_for_message(
        ANN, lambda m: plain(m) == "Pinged ✅", after=welcome["message_id"]
    )
    assert edited["message_id"] == welcome["message_id"]
    assert "edit_date" in edited
    assert buttons(edited) == []  # editMessageText without reply_markup drops the keyboard

    with pytest.raises(AssertionError, match=r"no inline button containing 'Nope'"):
        api.press_button(ANN, ANN, welcome["message_id"], "Nope")

    # The handler already answered: Telegram refuses a second answer.
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id, text="again")


async def test_photo_download_and_resend(api: FakeBotAPI, polling: Dispatcher) -> None:
    sent = api.send_photo(ANN, ANN, caption="my charger")
    original = sent["photo"][-1]
    data = api.file_bytes(original["file_id"])
    assert data.startswith(b"\x89PNG")
    assert len(sent["photo"]) == 2
    assert len({size["file_unique_id"] for size in sent["photo"]}) == 2

    await api.wait_for_message(ANN, lambda m: plain(m) == "re-uploaded")
    by_id, uploaded = api.bot_messages(ANN)
    assert plain(by_id) == f"got {len(data)} bytes"
    assert by_id["caption_entities"][0]["type"] == "bold"
    assert by_id["photo"][-1]["file_unique_id"] == original["file_unique_id"]
    assert uploaded["photo"][-1]["file_unique_id"] != original["file_unique_id"]
    assert api.file_bytes(uploaded["photo"][-1]["file_id"]) == data
    assert [name for name, _ in api.requests].count("getFile") == 1


async def test_failed_getupdates_is_retried_by_polling(
    api: FakeBotAPI, polling: Dispatcher
) -> None:
    api.fail_next("getUpdates", error_code=502, description="Bad Gateway", retry_after=None)
    api.send_text(ANN, ANN, "still there?")
    reply = await api.wait_for_message(ANN, timeout=10)
    assert plain(reply) == "still there?"


# --------------------------------------------------------------------------- direct calls


async def test_error_injection(api: FakeBotAPI, bot: Bot) -> None:
    api.fail_next("SENDMESSAGE", times=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(ANN, "hi")
        assert caught.value.retry_after == 1
    assert api.bot_messages(ANN) == []

    api.fail_next(
        "sendMessage", error_code=400, description="Bad Request: custom", retry_after=None
    )
    with pytest.raises(TelegramBadRequest, match="custom"):
        await bot.send_message(ANN, "hi")

    message = await bot.send_message(ANN, "hi")
    assert message.text == "hi"
    assert len(api.calls("sendmessage")) == 4


async def test_edit_errors(api: FakeBotAPI, bot: Bot) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a")]]
    )
    message = await bot.send_message(ANN, "<b>Menu</b>", reply_markup=markup)
    assert message.text == "Menu"
    assert message.from_user is not None and message.from_user.id == api.bot_id

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            text="<b>Menu</b>", chat_id=ANN, message_id=message.message_id, reply_markup=markup
        )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=ANN, message_id=message.message_id, reply_markup=markup
        )
    # Same text but different formatting is a real change.
    edited = await bot.edit_message_text(
        text="Menu", chat_id=ANN, message_id=message.message_id, reply_markup=markup
    )
    assert isinstance(edited, Message)
    assert edited.edit_date is not None

    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=ANN, message_id=999)

    photo = await bot.send_photo(ANN, BufferedInputFile(_png_bytes(), "p.png"), caption="cap")
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text(text="x", chat_id=ANN, message_id=photo.message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_caption(chat_id=ANN, message_id=photo.message_id, caption="cap")
    await bot.edit_message_caption(chat_id=ANN, message_id=photo.message_id, caption="new")
    assert plain(api.history(ANN)[-1]) == "new"

    user_msg = api.send_text(ANN, ANN, "mine")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text(text="x", chat_id=ANN, message_id=user_msg["message_id"])


async def test_a_file_sent_by_url_is_downloaded_or_refused_as_telegram_does(
    api: FakeBotAPI, bot: Bot
) -> None:
    """A URL instead of a file: the server fetches it (a real HTTP server on loopback
    here) and stores what it got; what it cannot fetch, or is not an image for a
    photo, is refused, and nothing is sent."""
    png = _png_bytes()

    async def shop(_request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    async def menu(_request: web.Request) -> web.Response:
        return web.Response(text="menu", content_type="text/plain")

    files = web.Application()
    files.router.add_get("/shop.png", shop)
    files.router.add_get("/menu.txt", menu)
    runner = web.AppRunner(files, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    try:
        photo = await bot.send_photo(ANN, f"{base}/shop.png", caption="storefront")
        assert photo.photo is not None
        assert api.file_bytes(photo.photo[-1].file_id) == png
        assert (photo.photo[-1].width, photo.photo[-1].height) == (4, 3)
        document = await bot.send_document(ANN, f"{base}/menu.txt")
        assert document.document is not None and document.document.file_name == "menu.txt"
        assert api.file_bytes(document.document.file_id) == b"menu"
        sent = len(api.bot_messages(ANN))
        with pytest.raises(TelegramBadRequest, match="failed to get HTTP URL content"):
            await bot.send_photo(ANN, f"{base}/missing.png")  # 404
        with pytest.raises(TelegramBadRequest, match="wrong type of the web page content"):
            await bot.send_photo(ANN, f"{base}/menu.txt")
    finally:
        await runner.cleanup()
    with pytest.raises(TelegramBadRequest, match="failed to get HTTP URL content"):
        await bot.send_document(ANN, f"{base}/menu.txt")  # nobody listens there now
    assert len(api.bot_messages(ANN)) == sent


async def test_bad_requests(api: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "hello?")
    with pytest.raises(TelegramBadRequest, match="can't parse entities: Unsupported start tag"):
        await bot.send_message(ANN, "1 < 2")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(ANN, "   ")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(ANN, "x" * 4097)
    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="x" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(ANN, "menu", reply_markup=too_long)
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ANN, BufferedInputFile(b"not an image", "x.jpg"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(ANN, "no-such-file-id")
    with pytest.raises(aiohttp.ClientResponseError):  # aiogram does not wrap download errors
        await bot.download_file("documents/nope.bin")
    assert api.bot_messages(ANN) == []

    api.block_bot(ANN)
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(ANN, "hi")


async def test_delete_and_history(api: FakeBotAPI, bot: Bot) -> None:
    first = await bot.send_message(ANN, "one")
    second = await bot.send_message(ANN, "two")
    assert (first.message_id, second.message_id) == (1, 2)
    assert await bot.delete_message(ANN, first.message_id) is True

    history = api.history(ANN)
    assert history[0]["deleted"] is True
    assert [plain(m) for m in api.bot_messages(ANN)] == ["two"]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(ANN, first.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=ANN, message_id=first.message_id)

    with pytest.raises(AssertionError, match=r"#2 \[bot\] 'two'"):
        await api.wait_for_message(ANN, lambda m: "three" in plain(m), timeout=0.2)


async def test_files_and_locations(api: FakeBotAPI, bot: Bot) -> None:
    document = await bot.send_document(
        ANN,
        BufferedInputFile(b"a,b\n1,2\n", "report.csv"),
        caption="<i>report</i>",
    )
    assert document.document is not None
    assert document.document.file_name == "report.csv"
    assert document.document.mime_type == "text/csv"
    assert document.caption == "report"
    assert api.file_bytes(document.document.file_id) == b"a,b\n1,2\n"
    downloaded = await bot.download(document.document.file_id)
    assert downloaded is not None and downloaded.read() == b"a,b\n1,2\n"
    resent = await bot.send_document(BOB, document.document.file_id)
    assert resent.document is not None
    assert resent.document.file_unique_id == document.document.file_unique_id
    with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
        await bot.send_photo(ANN, document.document.file_id)

    location = await bot.send_location(ANN, latitude=52.52, longitude=13.405)
    assert location.location is not None and location.location.latitude == 52.52
    venue = await bot.send_venue(
        ANN, latitude=52.5, longitude=13.4, title="Charger #1", address="Main st. 1"
    )
    assert venue.venue is not None and venue.venue.title == "Charger #1"
    assert await bot.send_chat_action(ANN, "typing") is True


async def test_reply_keyboard_state(api: FakeBotAPI, bot: Bot) -> None:
    keyboard = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="📱 Share phone", request_contact=True)]],
        resize_keyboard=True,
    )
    sent = await bot.send_message(ANN, "Share your phone", reply_markup=keyboard)
    assert sent.reply_markup is None  # Telegram only echoes inline keyboards
    assert reply_buttons(api.history(ANN)[-1]) == [["📱 Share phone"]]
    assert api.reply_keyboard(ANN) == [["📱 Share phone"]]
    await bot.send_message(ANN, "Thanks", reply_markup=ReplyKeyboardRemove())
    assert api.reply_keyboard(ANN) == []


async def test_get_updates_long_poll_and_user_content(api: FakeBotAPI, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for_poller()
    started = time.monotonic()
    api.send_contact(ANN, ANN, "+4915112345678", "Ann", contact_user_id=ANN)
    (update,) = await poll
    assert time.monotonic() - started < 1.0
    assert update.message is not None and update.message.contact is not None
    assert update.message.contact.user_id == ANN

    api.send_location(ANN, ANN, 52.5, 13.4)
    api.send_venue(ANN, ANN, 52.5, 13.4, "Cafe", "Main st. 2")
    api.send_document(ANN, ANN, b"%PDF-1.4", "id.pdf", "application/pdf")
    api.send_text(ANN, ANN, "/start deep-link")
    assert api.pending_updates == 4
    updates = await bot.get_updates(offset=update.update_id + 1, timeout=0)
    assert api.pending_updates == 0
    kinds = [u.message.content_type for u in updates if u.message is not None]
    assert kinds == ["location", "venue", "document", "text"]
    text_message = updates[-1].message
    assert text_message is not None and text_message.entities is not None
    assert text_message.entities[0].type == "bot_command"
    assert text_message.entities[0].length == len("/start")

    # allowed_updates is remembered and other update types are dropped.
    welcome = await bot.send_message(ANN, "menu")
    api.press(ANN, ANN, welcome.message_id, "forged-data")
    api.send_text(ANN, ANN, "after the press")
    offset = updates[-1].update_id + 1
    updates = await bot.get_updates(offset=offset, timeout=0, allowed_updates=["message"])
    assert [u.message.text for u in updates if u.message] == ["after the press"]
    assert all(u.callback_query is None for u in updates)


async def test_concurrent_get_updates_conflict(api: FakeBotAPI, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for_poller()
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await first
    assert await second == []


async def test_commands_and_webhook(api: FakeBotAPI, bot: Bot) -> None:
    scope = BotCommandScopeAllPrivateChats()
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="help", description="Help"),
    ]
    assert await bot.set_my_commands(commands, scope=scope, language_code="ru")
    assert await bot.get_my_commands() == []
    stored = await bot.get_my_commands(scope=scope, language_code="ru")
    assert [c.command for c in stored] == ["start", "help"]
    assert api.commands({"type": "all_private_chats"}, "ru")[0]["description"] == "Start"
    assert await bot.delete_my_commands(scope=scope, language_code="ru")
    assert api.commands({"type": "all_private_chats"}, "ru") == []

    assert await bot.set_webhook("https://example.com/hook")
    info = await bot.get_webhook_info()
    assert info.url == "https://example.com/hook"
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.log_out() is True


# --------------------------------------------------------------------------- webhooks


class _Receiver:
    """A webhook endpoint that records what it got and fails the first ``fail`` POSTs."""

    def __init__(self, fail: int = 0, *, drop: int = 0) -> None:
        self.fail = fail
        self.drop = drop  # then this many connections closed without an answer
        self.received: list[tuple[dict[str, object], str | None, str]] = []
        self.attempts = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        body = await request.json()
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500, text="boom")
        if self.drop > 0:
            self.drop -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        self.received.append((body, secret, request.content_type))
        return web.json_response({})

    async def __aenter__(self) -> _Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_webhook_delivery_in_order_with_secret_and_retries(api: FakeBotAPI, bot: Bot) -> None:
    api.webhook_backoff = (0.05, 0.2)
    async with _Receiver(fail=2, drop=1) as hook:
        api.send_text(ANN, ANN, "queued before the webhook")
        assert await bot.set_webhook(hook.url, secret_token="s3cr3t_TOKEN-1")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        api.send_text(ANN, ANN, "second")
        api.send_location(ANN, ANN, 31.23, 121.47)
        await wait_until(lambda: len(hook.received) == 3)
        texts = [body["message"].get("text") for body, _, _ in hook.received]  # type: ignore[union-attr]
        assert texts == ["queued before the webhook", "second", None]
        assert [body["update_id"] for body, _, _ in hook.received] == [1, 2, 3]
        assert {secret for _, secret, _ in hook.received} == {"s3cr3t_TOKEN-1"}
        assert {content_type for _, _, content_type in hook.received} == {"application/json"}
        # update 1 failed twice (500) and once on a dropped connection, with growing waits
        first = [attempt for attempt in api.webhook_attempts if attempt[0] == 1]
        assert [status for _, status, _ in first] == [500, 500, None, 200]
        waits = [waited for _, _, waited in first]
        assert waits[0] == 0 and 0 < waits[1] < waits[2] <= waits[3] <= 0.2
        info = await bot.get_webhook_info()
        assert info.url == hook.url
        assert info.pending_update_count == 0
        assert info.last_error_message and info.last_error_date
        await api.wait_idle()

        # deleteWebhook switches back: updates wait for getUpdates again
        assert await bot.delete_webhook()
        api.send_text(ANN, ANN, "after the webhook")
        updates = await bot.get_updates(timeout=1)
        assert [u.message.text for u in updates if u.message] == ["after the webhook"]
        assert len(hook.received) == 3


async def test_webhook_without_secret_and_a_poll_ended_by_set_webhook(
    api: FakeBotAPI, bot: Bot
) -> None:
    async with _Receiver() as hook:
        poll = asyncio.create_task(bot.get_updates(timeout=5))
        await api.wait_for_poller()
        assert await bot.set_webhook(hook.url)
        with pytest.raises(TelegramConflictError, match="setWebhook"):
            await poll
        api.send_text(ANN, ANN, "hi")
        await wait_until(lambda: len(hook.received) == 1)
        assert hook.received[0][1] is None  # no secret header without a secret_token
        with pytest.raises(TelegramBadRequest, match="HTTPS URL"):
            await bot.set_webhook("ftp://example.com/hook")
        assert await bot.set_webhook("")  # an empty URL removes the webhook, like Telegram
        assert (await bot.get_webhook_info()).url == ""


@pytest.mark.parametrize("in_background", [True, False], ids=["background", "in-reply"])
async def test_aiogram_webhook_bot_end_to_end(
    api: FakeBotAPI, bot: Bot, in_background: bool
) -> None:
    """aiogram's own webhook handler; without background handling it answers in the reply."""
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application

    dp = Dispatcher()
    replies = Router()

    @replies.message(Command("inreply"))
    async def in_reply(message: Message) -> object:
        return message.answer(f"answered <b>in the reply</b>: {in_background}")

    dp.include_routers(replies, make_router())
    app = web.Application()
    SimpleRequestHandler(
        dp, bot, secret_token="hook-secret", handle_in_background=in_background
    ).register(app, path="/tg")
    setup_application(app, dp, bot=bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        assert await bot.set_webhook(f"http://{host}:{port}/tg", secret_token="hook-secret")
        sent = api.send_text(ANN, ANN, "/start")
        welcome = await api.wait_for_message(
            ANN, lambda m: "Hello" in plain(m), after=sent["message_id"]
        )
        assert buttons(welcome) == [["🏓 Ping"], ["Docs"]]
        query = api.press_button(ANN, ANN, welcome["message_id"], "Ping")
        answer = await api.wait_for_callback_answer(query)
        assert answer["text"] == "Pong!"
        await api.wait_for_message(ANN, lambda m: plain(m) == "Pinged ✅")
        api.send_text(ANN, ANN, "/inreply")
        reply = await api.wait_for_message(
            ANN, lambda m: plain(m) == f"answered in the reply: {in_background}"
        )
        assert reply["entities"][0]["type"] == "bold"
        await api.wait_idle()
        assert await bot.delete_webhook()
    finally:
        await runner.cleanup()
    assert all(status == 200 for _, status, _ in api.webhook_attempts)
    # the answer went back inside the webhook's reply, or as its own API call
    direct_calls = [p for p in api.calls("sendMessage") if "in the reply" in str(p.get("text"))]
    assert len(direct_calls) == 1


def test_parse_html_matches_telegram() -> None:
    text, entities = parse_html('<b>Bold <i>both</i></b> 😀 <a href="https://x.io">l</a>')
    assert text == "Bold both 😀 l"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 9},
        {"type": "italic", "offset": 5, "length": 4},
        {"type": "text_link", "offset": 13, "length": 1, "url": "https://x.io"},
    ]
    assert plain("<b>a</b> &lt; b") == "a < b"


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- documents


async def test_documents_keep_their_name_type_and_caption(api: FakeBotAPI, bot: Bot) -> None:
    image = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 30)).save(image, "PNG")
    sent = {
        "orders.csv": (b"id,total\n1,12.00\n", "text/csv"),
        "chart.png": (image.getvalue(), "image/png"),
    }
    for name, (data, mime) in sent.items():
        message = await bot.send_document(
            ANN, BufferedInputFile(data, name), caption=f"<b>{name}</b> &amp; more"
        )
        assert message.document is not None
        assert (message.document.file_name, message.document.mime_type) == (name, mime)
        assert message.caption == f"{name} & more"
        assert message.caption_entities is not None
        assert message.caption_entities[0].type == "bold"
        assert api.file_info(message.document.file_id) == (data, mime)
        assert api.file_name(message.document.file_id) == name
        downloaded = await bot.download(message.document.file_id)
        assert downloaded is not None and downloaded.read() == data
    assert [m["document"]["file_name"] for m in api.bot_messages(ANN)] == list(sent)


# --------------------------------------------------------------------------- payments


def cny_invoice(**overrides: object) -> dict[str, object]:
    """sendInvoice arguments for a ¥12.00 charge (aiogram's names)."""
    return {
        "chat_id": ANN,
        "title": "Charging 2 h",
        "description": "Shop 1, charger 2, 2 hours",
        "payload": "booking:42",
        "provider_token": "TEST:provider",
        "currency": "CNY",
        "prices": [LabeledPrice(label="2 h", amount=1000), LabeledPrice(label="Fee", amount=200)],
        **overrides,
    }


def payments_router(seen: list[object], *, error: str | None = None) -> Router:
    """Answers pre-checkout queries (ok, or ``error``) and thanks for each payment."""
    router = Router(name="payments")

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        seen.append(query)
        await query.answer(ok=error is None, error_message=error)

    @router.message(F.successful_payment)
    async def paid(message: Message) -> None:
        assert message.successful_payment is not None
        seen.append(message.successful_payment)
        amount = message.successful_payment.total_amount
        await message.answer(f"Paid {amount} {message.successful_payment.currency}")

    return router


@pytest.fixture
async def paying(
    api: FakeBotAPI, bot: Bot, request: pytest.FixtureRequest
) -> AsyncIterator[list[object]]:
    """A Dispatcher with :func:`payments_router` polling; yields what its handlers saw."""
    seen: list[object] = []
    dp = Dispatcher()
    dp.include_router(payments_router(seen, error=getattr(request, "param", None)))
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, allowed_updates=dp.resolve_used_update_types())
    )
    await api.wait_for_poller()
    yield seen
    await dp.stop_polling()
    await task


async def test_send_invoice_makes_an_invoice_message(api: FakeBotAPI, bot: Bot) -> None:
    pay_first = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Pay ¥12.00", pay=True)],
            [InlineKeyboardButton(text="Cancel", callback_data="cancel")],
        ]
    )
    message = await bot.send_invoice(
        **cny_invoice(start_parameter="b42", photo_url="https://example.com/p.jpg"),
        reply_markup=pay_first,
    )
    assert message.invoice is not None
    assert message.invoice.model_dump() == {
        "title": "Charging 2 h",
        "description": "Shop 1, charger 2, 2 hours",
        "start_parameter": "b42",
        "currency": "CNY",
        "total_amount": 1200,
    }
    assert buttons(api.bot_messages(ANN)[-1]) == [["Pay ¥12.00"], ["Cancel"]]
    kept = api.invoice(ANN, message.message_id)
    assert kept is not None
    assert (kept["payload"], kept["provider_token"]) == ("booking:42", "TEST:provider")
    # Telegram Stars: no provider, one price, no decimals
    stars = await bot.send_invoice(
        **cny_invoice(currency="XTR", provider_token="", prices=[LabeledPrice(label="x", amount=5)])
    )
    assert stars.invoice is not None and stars.invoice.total_amount == 5


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"title": ""}, "title must be 1-32"),
        ({"title": "x" * 33}, "title must be 1-32"),
        ({"description": "d" * 256}, "description must be 1-255"),
        ({"payload": "p" * 129}, "INVOICE_PAYLOAD_INVALID"),
        ({"payload": "é" * 65}, "INVOICE_PAYLOAD_INVALID"),  # 130 bytes
        ({"currency": "yuan"}, "CURRENCY_INVALID"),
        ({"provider_token": None}, "PAYMENT_PROVIDER_INVALID"),
        ({"currency": "XTR"}, "PAYMENT_PROVIDER_INVALID"),  # Stars take no provider
        ({"prices": []}, "prices must be a non-empty array"),
        ({"prices": [LabeledPrice(label="free", amount=0)]}, "Total price must be positive"),
        # under ¥7 (about US$1) and over ¥70,000 (about US$10,000), as Telegram's limits
        ({"prices": [LabeledPrice(label="2 h", amount=699)]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        (
            {"prices": [LabeledPrice(label="2 h", amount=7_000_001)]},
            "CURRENCY_TOTAL_AMOUNT_INVALID",
        ),
        (
            {"currency": "USD", "prices": [LabeledPrice(label="x", amount=99)]},
            "CURRENCY_TOTAL_AMOUNT_INVALID",
        ),
        (
            {
                "reply_markup": InlineKeyboardMarkup(
                    inline_keyboard=[[InlineKeyboardButton(text="Cancel", callback_data="c")]]
                )
            },
            "REPLY_MARKUP_BUY_EMPTY",
        ),
    ],
)
async def test_send_invoice_validation(
    api: FakeBotAPI, bot: Bot, overrides: dict[str, object], error: str
) -> None:
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_invoice(**cny_invoice(**overrides))
    assert api.history(ANN) == []


async def test_smallest_and_largest_totals_pass(api: FakeBotAPI, bot: Bot) -> None:
    for amount in (700, 7_000_000):
        prices = [
            LabeledPrice(label="a", amount=amount + 300),
            LabeledPrice(label="-", amount=-300),
        ]
        message = await bot.send_invoice(**cny_invoice(prices=prices))  # a discount part
        assert message.invoice is not None and message.invoice.total_amount == amount


async def test_paying_through_a_dispatcher(api: FakeBotAPI, bot: Bot, paying: list[object]) -> None:
    invoice = await bot.send_invoice(**cny_invoice())
    payment = await api.pay_invoice(ANN, ANN, invoice.message_id)
    assert payment.status == "paid", payment
    thanks = await api.wait_for_message(ANN, lambda m: plain(m) == "Paid 1200 CNY")

    query, paid = paying
    assert isinstance(query, PreCheckoutQuery) and isinstance(paid, SuccessfulPayment)
    assert query.id == payment.pre_checkout_query_id
    assert query.from_user.id == ANN
    assert (query.currency, query.total_amount, query.invoice_payload) == (
        "CNY",
        1200,
        "booking:42",
    )
    assert (paid.currency, paid.total_amount, paid.invoice_payload) == ("CNY", 1200, "booking:42")
    assert paid.telegram_payment_charge_id and paid.provider_payment_charge_id
    assert payment.successful_payment == paid.model_dump(exclude_none=True)
    assert api.pre_checkout_answer(query.id) == {"ok": True, "error_message": None}
    receipt = api.history(ANN)[payment.message_id - 1]
    assert receipt["from"]["id"] == ANN and "successful_payment" in receipt
    with pytest.raises(ValueError, match="paid already"):
        await api.pay_invoice(ANN, ANN, invoice.message_id)

    # Telegram may deliver the same payment twice: same message, same charge id
    api.deliver_payment_again(payment)
    await api.wait_for_message(
        ANN, lambda m: plain(m) == "Paid 1200 CNY", after=thanks["message_id"]
    )
    again = paying[-1]
    assert isinstance(again, SuccessfulPayment)
    assert again.telegram_payment_charge_id == paid.telegram_payment_charge_id
    assert payment.deliveries == 2

    # each payment has its own charge id
    second = await bot.send_invoice(**cny_invoice(payload="booking:43"))
    other = await api.pay_invoice(ANN, ANN, second.message_id)
    assert other.successful_payment is not None and payment.successful_payment is not None
    assert (
        other.successful_payment["telegram_payment_charge_id"]
        != payment.successful_payment["telegram_payment_charge_id"]
    )


async def test_a_forged_amount_reaches_the_bot_as_paid(
    api: FakeBotAPI, bot: Bot, paying: list[object]
) -> None:
    invoice = await bot.send_invoice(**cny_invoice())
    payment = await api.pay_invoice(ANN, ANN, invoice.message_id, total_amount=1, currency="USD")
    assert payment.status == "paid"
    await api.wait_for_message(ANN, lambda m: plain(m) == "Paid 1 USD")
    query = paying[0]
    assert isinstance(query, PreCheckoutQuery)
    assert (query.total_amount, query.currency, query.invoice_payload) == (1, "USD", "booking:42")


@pytest.mark.parametrize("paying", ["Sorry, the charger was just taken"], indirect=True)
async def test_the_bot_refuses_at_pre_checkout(
    api: FakeBotAPI, bot: Bot, paying: list[object]
) -> None:
    invoice = await bot.send_invoice(**cny_invoice())
    payment = await api.pay_invoice(ANN, ANN, invoice.message_id)
    assert payment.status == "rejected"
    assert payment.error_message == "Sorry, the charger was just taken"
    assert payment.successful_payment is None
    await api.wait_idle()
    assert [m["message_id"] for m in api.history(ANN)] == [invoice.message_id]  # no payment
    # an answered query cannot be answered again
    assert payment.pre_checkout_query_id is not None
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(payment.pre_checkout_query_id, ok=True)


async def test_pre_checkout_answer_rules_and_deadline(api: FakeBotAPI, bot: Bot) -> None:
    api.pre_checkout_timeout = 0.5  # Telegram's 10 s, shortened for the test
    invoice = await bot.send_invoice(**cny_invoice())
    paying = asyncio.create_task(api.pay_invoice(ANN, ANN, invoice.message_id))
    (update,) = await bot.get_updates(timeout=5, allowed_updates=["pre_checkout_query"])
    query = update.pre_checkout_query
    assert query is not None and query.invoice_payload == "booking:42"
    with pytest.raises(TelegramBadRequest, match="ERROR_TEXT_EMPTY"):
        await bot.answer_pre_checkout_query(query.id, ok=False)  # a refusal needs a reason
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query("12345", ok=True)  # unknown id
    payment = await paying  # nobody answered in time
    assert payment.status == "timed_out" and payment.successful_payment is None
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(query.id, ok=True)  # too late
    assert api.pre_checkout_answer(query.id) is None
    assert [m["message_id"] for m in api.history(ANN)] == [invoice.message_id]

    # an answer in time, by the deadline given to this payment
    paying = asyncio.create_task(api.pay_invoice(ANN, ANN, invoice.message_id, timeout=5))
    (update,) = await bot.get_updates(offset=update.update_id + 1, timeout=5)
    assert update.pre_checkout_query is not None
    assert await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
    assert (await paying).status == "paid"
    assert [p.status for p in api.payments] == ["timed_out", "paid"]


async def test_the_provider_declines(api: FakeBotAPI, bot: Bot) -> None:
    invoice = await bot.send_invoice(**cny_invoice())
    # the card is refused before the bot hears of it: no update at all
    payment = await api.pay_invoice(ANN, ANN, invoice.message_id, decline=True)
    assert (payment.status, payment.pre_checkout_query_id) == ("declined", None)
    assert api.pending_updates == 0

    # refused after the bot said yes: a pre-checkout query, but no payment follows
    paying = asyncio.create_task(
        api.pay_invoice(ANN, ANN, invoice.message_id, decline_after_checkout=True)
    )
    (update,) = await bot.get_updates(timeout=5)
    assert update.pre_checkout_query is not None
    await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
    payment = await paying
    assert payment.status == "declined" and payment.pre_checkout_query_id is not None
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == []
    assert [m["message_id"] for m in api.history(ANN)] == [invoice.message_id]
    with pytest.raises(ValueError, match="not an invoice"):
        await api.pay_invoice(ANN, ANN, 99)
