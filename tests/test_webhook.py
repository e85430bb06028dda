"""Webhook mode (issue #6): the local Bot API server delivers updates by POST to the
bot's webhook; a call without the secret, with a wrong one, or with a body that is
not an Update is refused and changes nothing; /healthz, /readyz and /metrics."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.settings import load_settings
from models import User
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, plain
from tests.harness import ADMINS, GROUP, start_api
from tests.support.services import MosquittoServer, free_port

SECRET = "s3cret-Token_for-tests"
USER = 3001


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((USER, "Wen", "en"))
    yield server
    await server.stop()


@pytest.fixture
async def webhook_app(
    api: FakeBotAPI, tmp_path, broker: MosquittoServer
) -> AsyncIterator[tuple[App, str]]:
    port = free_port()
    settings = load_settings(
        bot_token=api.token,
        telegram_api_url=api.url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        moderation_chat_id=GROUP,
        admin_ids=",".join(map(str, ADMINS)),
        mqtt_url=broker.url,
        webhook_url=f"http://127.0.0.1:{port}/telegram/hook",
        webhook_secret=SECRET,
        webhook_listen=f"127.0.0.1:{port}",
        _env_file=None,
    )
    app = App(settings)
    task = asyncio.create_task(app.run_webhook())
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if task.done():
                task.result()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200 and api.calls("setWebhook"):
                        break
            await asyncio.sleep(0.05)
    yield app, base
    app.stopping.set()
    await asyncio.wait_for(task, 20)


async def users(app: App) -> int:
    engine = create_engine(app.settings.database_url)
    async with create_session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(User))
    await engine.dispose()
    return count or 0


async def test_updates_arrive_by_webhook(webhook_app: tuple[App, str], api: FakeBotAPI) -> None:
    app, _ = webhook_app
    (call,) = api.calls("setWebhook")
    assert call["url"].endswith("/telegram/hook") and call["secret_token"] == SECRET
    assert "message" in call["allowed_updates"] and "callback_query" in call["allowed_updates"]
    api.send_text(USER, USER, "/start")
    reply = await api.wait_for_message(USER, timeout=10)
    assert "ChargeShare" in plain(reply)
    # getUpdates is refused while the webhook is set, as on Telegram
    assert app.settings.webhook_url


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b'{"update_id": 1, "message": null}', 401),  # no secret
        ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, b'{"update_id": 1}', 401),
        ({"X-Telegram-Bot-Api-Secret-Token": "s3cret-é"}, b'{"update_id": 1}', 401),
        ({"X-Telegram-Bot-Api-Secret-Token": SECRET}, b"{not json", 400),
        ({"X-Telegram-Bot-Api-Secret-Token": SECRET}, b'{"hello": "world"}', 400),
        ({"X-Telegram-Bot-Api-Secret-Token": SECRET}, b"[1, 2, 3]", 400),
    ],
)
async def test_forged_or_malformed_calls_are_refused(
    webhook_app: tuple[App, str], headers: dict, body: bytes, status: int
) -> None:
    app, base = webhook_app
    forged_message = (
        b'{"update_id": 99, "message": {"message_id": 1, "date": 0, '
        b'"chat": {"id": 4242, "type": "private"}, "from": {"id": 4242, '
        b'"is_bot": false, "first_name": "Eve"}, "text": "/start"}}'
    )
    before = await users(app)
    async with aiohttp.ClientSession() as http:
        payload = forged_message if status == 401 else body
        async with http.post(
            f"{base}/telegram/hook",
            data=payload,
            headers={"Content-Type": "application/json", **headers},
        ) as response:
            assert response.status == status
    await asyncio.sleep(0.2)
    assert await users(app) == before  # nobody was registered, nothing answered


async def test_probes_and_metrics(webhook_app: tuple[App, str], api: FakeBotAPI) -> None:
    _app, base = webhook_app
    api.send_text(USER, USER, "/help")
    await api.wait_for_message(USER, timeout=10)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
        for _ in range(100):  # the broker connection comes up in the background
            async with http.get(f"{base}/readyz") as response:
                checks = await response.json()
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)
        assert checks == {"database": "ok", "mqtt": "ok"}
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    assert 'chargeshare_updates_total{type="message"}' in text
    assert "chargeshare_handler_seconds_bucket" in text
    assert "chargeshare_active_sessions 0.0" in text
    assert "chargeshare_pending_notifications" in text
    assert "chargeshare_mqtt_reconnections" in text


async def test_readyz_says_what_is_down(
    webhook_app: tuple[App, str], broker: MosquittoServer
) -> None:
    app, base = webhook_app
    await app.bridge.client.stop()  # as if the broker were unreachable
    async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["mqtt"] == "down"
