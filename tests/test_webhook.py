"""Webhook mode (issue #6): the local Bot API server delivers updates by POST to the
bot's webhook; a call without the secret, with a wrong one, or with a body that is
not an Update (also one nested too deeply, or too large) is refused and changes
nothing; an update delivered twice acts once (issue #12); /healthz on the public
listener, /readyz and /metrics only on the metrics listener."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from bot.app import App
from bot.settings import SettingsError, load_settings
from models import User
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI, plain
from tests.harness import ADMINS, GROUP, start_api
from tests.support.services import MosquittoServer, free_port, start_redis
from tests.support.waiting import wait_until

SECRET = "s3cret-Token_for-tests"
USER = 3001


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((USER, "Wen", "en"))
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def store() -> str:
    """Where handled update ids are kept: the database (no REDIS_URL) or Redis."""
    return "database"


@pytest.fixture
async def webhook_app(
    api: FakeBotAPI, tmp_path, broker: MosquittoServer, request: pytest.FixtureRequest, store: str
) -> AsyncIterator[tuple[App, str]]:
    port, monitor_port = free_port(), free_port()
    if store == "redis":  # this test's Telegram starts its update ids from 1 again
        redis = Redis.from_url(request.getfixturevalue("redis_url"))
        await redis.flushdb()
        await redis.aclose()
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
        metrics_listen=f"127.0.0.1:{monitor_port}",
        redis_url=request.getfixturevalue("redis_url") if store == "redis" else None,
        _env_file=None,
    )
    app = App(settings)
    task = asyncio.create_task(app.run_webhook())
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:

        async def serving() -> bool:
            if task.done():
                task.result()  # start-up failed: say why
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/healthz") as response:
                    return response.status == 200 and bool(api.calls("setWebhook"))
            return False

        await wait_until(serving, timeout=10, what="the webhook app serving")
    yield app, base
    app.stopping.set()
    await asyncio.wait_for(task, 20)


def monitor(app: App) -> str:
    """The base URL of the probes' and metrics' own listener."""
    assert app.settings.metrics_listen
    return f"http://{app.settings.metrics_listen}"


async def users(app: App) -> int:
    engine = create_engine(app.settings.database_url)
    async with create_session_factory(engine)() as db:
        count = await db.scalar(select(func.count()).select_from(User))
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
    await asyncio.sleep(0.2)  # that nothing happens has no event: a quiet while
    assert await users(app) == before  # nobody was registered, nothing answered


async def test_probes_and_metrics(webhook_app: tuple[App, str], api: FakeBotAPI) -> None:
    app, _base = webhook_app
    api.send_text(USER, USER, "/help")
    await api.wait_for_message(USER, timeout=10)
    async with aiohttp.ClientSession(base_url=monitor(app)) as http:
        async with http.get("/healthz") as response:
            assert response.status == 200
        checks: dict[str, str] = {}

        async def ready() -> bool:  # the broker connection comes up in the background
            nonlocal checks
            async with http.get("/readyz") as response:
                checks = await response.json()
                return response.status == 200

        await wait_until(ready, what="/readyz")
        assert checks == {"database": "ok", "mqtt": "ok"}
        async with http.get("/metrics") as response:
            assert response.status == 200
            text = await response.text()
    assert 'chargeshare_updates_total{type="message"}' in text
    assert "chargeshare_handler_seconds_bucket" in text
    assert "chargeshare_active_sessions 0.0" in text
    assert "chargeshare_pending_notifications" in text
    assert "chargeshare_mqtt_reconnections" in text


async def test_the_public_listener_serves_only_the_webhook_and_healthz(
    webhook_app: tuple[App, str],
) -> None:
    _app, base = webhook_app
    async with aiohttp.ClientSession(base_url=base) as http:
        async with http.get("/healthz") as response:  # the proxy's health check
            assert response.status == 200 and await response.text() == "ok"
        for path in ("/metrics", "/readyz"):
            async with http.get(path) as response:
                assert response.status == 404, path


async def test_readyz_says_what_is_down(
    webhook_app: tuple[App, str], broker: MosquittoServer
) -> None:
    app, _base = webhook_app
    await app.bridge.client.stop()  # as if the broker were unreachable
    async with aiohttp.ClientSession() as http, http.get(f"{monitor(app)}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["mqtt"] == "down"


# -- hostile and careless callers (issue #12) ----------------------------------------------


def a_message(update_id: int, text: str, user: int = USER) -> bytes:
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": user, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "Wen"},
                "text": text,
            },
        }
    ).encode()


async def post(base: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/telegram/hook",
            data=body,
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response,
    ):
        return response.status


async def test_a_body_nested_too_deeply_is_refused(webhook_app: tuple[App, str]) -> None:
    app, base = webhook_app
    deep = 100_000
    body = b'{"update_id": 7, "message": ' + b"[" * deep + b"]" * deep + b"}"
    before = await users(app)
    assert await post(base, body) == 400
    assert await users(app) == before


async def test_a_body_too_large_is_refused(webhook_app: tuple[App, str], api: FakeBotAPI) -> None:
    app, base = webhook_app
    before = await users(app)
    stranger = 4343
    assert await post(base, a_message(8, "/start " + "x" * 600_000, stranger)) == 413
    assert await post(base, a_message(9, "/help", stranger)) == 200  # the same, small: fine
    assert await users(app) == before + 1


@pytest.mark.parametrize("store", ["database", "redis"])
async def test_an_update_delivered_twice_acts_once(
    webhook_app: tuple[App, str], api: FakeBotAPI
) -> None:
    _app, base = webhook_app
    # again after it was answered (Telegram missed the answer), then twice at once
    assert await post(base, a_message(11, "/help")) == 200
    assert await post(base, a_message(11, "/help")) == 200
    assert await asyncio.gather(
        post(base, a_message(12, "/start")), post(base, a_message(12, "/start"))
    ) == [200, 200]
    await api.wait_idle()
    replies = [plain(m) for m in api.bot_messages(USER)]
    assert len(replies) == 2, replies  # one /help, one /start
    assert await post(base, a_message(13, "/help")) == 200  # a new update is handled
    await api.wait_for_message(USER, after=2, timeout=10)


def test_metrics_are_never_on_the_public_listener() -> None:
    common = {
        "bot_token": "42:TOKEN",
        "moderation_chat_id": GROUP,
        "webhook_url": "https://bot.example.com/tg",
        "webhook_secret": SECRET,
        "_env_file": None,
    }
    with pytest.raises(SettingsError, match="METRICS_LISTEN must differ from WEBHOOK_LISTEN"):
        load_settings(**common, webhook_listen="0.0.0.0:8080", metrics_listen="0.0.0.0:8080")
    assert load_settings(**common).metrics_listen == "127.0.0.1:8081"  # loopback by default
    assert load_settings(**common, metrics_listen="").metrics_listen is None  # off
