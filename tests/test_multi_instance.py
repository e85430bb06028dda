"""Several instances (issue #6): two `python -m bot` processes in webhook mode on
PostgreSQL + Redis + mosquitto, behind a load balancer that sends each update to
either at random. A listing, a booking and a charging session go through with the
steps landing on both; every notification arrives once; one order. One instance is
killed mid-session and mid-wizard and the other carries on. Due work with both
running happens once."""

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from models import AuditEntry, Booking, BookingStatus, Charger, Order
from models.base import utcnow
from models.db import create_engine, create_session_factory
from services import bookings
from services.charging import ChargingRules
from services.tx import transaction
from tests.botapi import FakeBotAPI, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api
from tests.plugs import SimTasmota
from tests.support.services import (
    MosquittoServer,
    PostgresServer,
    free_port,
    start_redis,
)
from tests.support.waiting import wait_until
from tests.test_flow_booking import OTHER_RIDER
from tests.test_flow_charging import RULES, label_token, scan_and_start, stop
from tests.test_flow_listing import fill_charger, fill_shop
from tests.test_flow_qr import decode

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "test-artifacts"  # the instances' logs, for a failure's post-mortem
LOGS.mkdir(exist_ok=True)
SECRET = "multi-instance-secret"
MERCHANT, RIDER, OTHER = 1001, 2001, 1002
CHARGING_RULES = ChargingRules(zone=RULES.zone, platform_chat_id=GROUP)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
async def database(postgres: PostgresServer, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = f"multi_{request.node.name[:20]}".lower().replace("[", "_").replace("]", "")
    url = await postgres.create_database(name)
    yield url
    await postgres.drop_database(name)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"),
        (RIDER, "Ravi", "en"),
        (OTHER, "Otto", "en"),
        (OTHER_RIDER, "Olga", "en"),
    )
    yield server
    await server.stop()


# -- the load balancer and the instances -----------------------------------------------------


@dataclass
class Balancer:
    """What a reverse proxy does: each request to a random live backend; a backend
    that refuses the connection is skipped (proxy_next_upstream)."""

    backends: list[str] = field(default_factory=list)
    hits: Counter = field(default_factory=Counter)
    last: str = ""  # the backend that answered the latest call
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/tg", self.forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/tg"

    async def forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")
        }
        for backend in random.sample(self.backends, len(self.backends)):
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(f"{backend}/tg", data=body, headers=headers) as response,
                ):
                    self.hits[backend] += 1
                    self.last = backend
                    return web.Response(status=response.status, body=await response.read())
            except aiohttp.ClientConnectionError:
                continue  # dead or dying: the next one
        return web.Response(status=502, text="no backend")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Instance:
    name: str
    base: str  # the webhook's listener
    monitor: str  # the probes' and metrics' listener
    process: asyncio.subprocess.Process

    async def ready(self, timeout: float = 40.0) -> None:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(f"instance {self.name} exited: {self.process.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.monitor}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"instance {self.name} not ready in {timeout}s")

    def kill(self) -> None:
        self.process.kill()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_instance(
    name: str,
    api: FakeBotAPI,
    database: str,
    redis_url: str,
    broker: str,
    balancer: Balancer,
    extra_env: dict[str, str] | None = None,
) -> Instance:
    port, monitor_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("BOT_", "DATABASE_", "MQTT_", "TELEGRAM_", "WEBHOOK_", "REDIS_", "METRICS_")
        )
    }
    env |= {
        "BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": api.url,
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "MQTT_URL": broker,
        "WEBHOOK_URL": balancer.url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "METRICS_LISTEN": f"127.0.0.1:{monitor_port}",
        "MODERATION_CHAT_ID": str(GROUP),
        "ADMIN_IDS": ",".join(map(str, ADMINS)),
        "SCHEDULER_INTERVAL_SECONDS": "0.3",
        "DEVICE_CONFIRM_SECONDS": "3",
        "PYTHONPATH": str(ROOT),
    }
    env |= extra_env or {}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(LOGS / f"instance-{name}.log", "wb"),  # noqa: ASYNC230, SIM115
    )
    instance = Instance(
        name, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{monitor_port}", process
    )
    balancer.backends.append(instance.base)
    return instance


@pytest.fixture
async def cluster(
    api: FakeBotAPI, database: str, redis_url: str, broker: MosquittoServer
) -> AsyncIterator[tuple[Balancer, list[Instance]]]:
    # each test has a Telegram of its own, whose update ids start again from 1: forget
    # the last test's (conversations, and the update ids the instances handled)
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    balancer = Balancer()
    await balancer.start()
    instances = [
        await start_instance(name, api, database, redis_url, broker.url, balancer)
        for name in ("a", "b")
    ]
    try:
        await asyncio.gather(*(i.ready() for i in instances))
        yield balancer, instances
    finally:
        for instance in instances:
            await instance.stop()
        await balancer.stop()


def count(api: FakeBotAPI, chat: int, text: str) -> int:
    """How many messages saying ``text`` were sent to the chat: sends, not what the
    messages say now (cards are edited to their final state, issue #16)."""
    sent = [*api.calls("sendMessage"), *api.calls("sendPhoto"), *api.calls("sendDocument")]
    return sum(
        1
        for params in sent
        if str(params.get("chat_id")) == str(chat)
        and text in str(params.get("text") or params.get("caption") or "")
    )


# -- the tests ------------------------------------------------------------------------------


async def test_lifecycle_across_two_instances_with_one_killed(
    cluster: tuple[Balancer, list[Instance]],
    api: FakeBotAPI,
    database: str,
    broker: MosquittoServer,
) -> None:
    balancer, (first, second) = cluster
    driver = BotHarness(api, database)  # only its say/expect/press helpers

    # a listing through the whole wizard: each answer may land on either instance; its
    # plug online from the start, so the wizard pairs it
    plug = SimTasmota(broker.url, "tasmota_multi")
    await plug.start()
    await fill_shop(driver)
    await fill_charger(driver, 1, "Tasmota", "tasmota_multi", paired=True)
    summary = await driver.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
    cursor = api.last_message_id(GROUP)
    label_cursor = api.last_message_id(MERCHANT)
    await driver.press(MERCHANT, MERCHANT, summary, "Submit")
    card = await driver.expect(GROUP, "New listing", cursor, timeout=10)
    await driver.press(GROUP, ADMINS[0], card, "Approve")
    label = await driver.expect(MERCHANT, "Print this label", label_cursor, timeout=15)
    token = decode(api, label).rsplit("=", 1)[1]

    try:
        engine = create_engine(database)
        async with create_session_factory(engine)() as db, transaction(db):
            await db.execute(  # open all day, so "now for 1 h" fits at any hour
                update(Charger).values(hours={str(d): [["00:00", "24:00"]] for d in range(7)})
            )
        await engine.dispose()

        # a booking, accepted by the merchant
        await driver.say(RIDER, "/find", "Where are you")
        after = api.last_message_id(RIDER)
        api.send_location(RIDER, RIDER, 31.2304, 121.4737)
        results = await driver.expect(RIDER, "near you (page 1/1)", after, timeout=10)
        after = api.last_message_id(RIDER)
        await driver.press(RIDER, RIDER, results, "1. Volt Café")
        shop = await driver.expect(RIDER, "Book charger 1", after)
        after = api.last_message_id(RIDER)
        await driver.press(RIDER, RIDER, shop, "Book charger 1")
        await driver.expect(RIDER, "Which device", after)
        await driver.say(RIDER, "E-bike", "Which model")
        await driver.say(RIDER, "Yadea G5", "When?")
        check = await driver.say(RIDER, "⚡ Now for 1 h", "Confirm booking")
        merchant_cursor = api.last_message_id(MERCHANT)
        await driver.press(RIDER, RIDER, check, "Confirm booking")
        request = await driver.expect(MERCHANT, "New booking request", merchant_cursor)
        after = api.last_message_id(RIDER)
        await driver.press(MERCHANT, MERCHANT, request, "Accept")
        await driver.expect(RIDER, "Booking accepted", after, timeout=10)

        # a second merchant half way through the wizard
        await driver.say(OTHER, "/newlisting", "Contact phone")
        await driver.say(OTHER, "+86 138 0000 3333", "Shop name")

        merchant_cursor = api.last_message_id(MERCHANT)
        started = await scan_and_start(driver, RIDER, token)
        assert plug.on

        # kill the instance that handled the start, mid-session and mid-wizard: the
        # other carries the session, the conversation and the messages owed on
        victim = next(i for i in (first, second) if i.base == balancer.last)
        survivor = second if victim is first else first
        victim.kill()
        await victim.process.wait()
        # an update the dead instance was handling is delivered again to the other,
        # once the per-user lock it held runs out (seconds, not a minute)
        after = api.last_message_id(OTHER)
        api.send_text(OTHER, OTHER, "Otto's Outlets")
        await driver.expect(OTHER, "photo of the storefront", after, timeout=20)
        after = api.last_message_id(RIDER)
        query = api.press_button(RIDER, RIDER, started["message_id"], "Status")
        await api.wait_for_callback_answer(query, timeout=15)
        await driver.expect(RIDER, "Energy so far", after)
        # owed to the merchant: sent by the survivor if the dead one had claimed it
        await driver.expect(MERCHANT, "Charging started: booking", merchant_cursor, timeout=30)
        await stop(driver, RIDER, started)
        await driver.expect(RIDER, "Order #", after, timeout=10)
        await driver.expect(GROUP, "Order #", 0, timeout=10)
        await driver.expect(MERCHANT, "Order #", 0, timeout=10)
        assert not plug.on
    finally:
        await plug.stop()

    await api.wait_idle(quiet=1.0)
    # every notification exactly once
    assert count(api, GROUP, "New listing") == 1
    assert count(api, MERCHANT, "Print this label") == 1
    assert count(api, MERCHANT, "New booking request") == 1
    assert count(api, RIDER, "Booking accepted") == 1
    assert count(api, MERCHANT, "Charging started: booking") == 1
    assert [count(api, chat, "Order #") for chat in (RIDER, MERCHANT, GROUP)] == [1, 1, 1]
    # the steps landed on both instances
    assert all(balancer.hits[i.base] > 0 for i in (first, second)), balancer.hits
    assert survivor.process.returncode is None


async def test_due_work_happens_once_with_two_instances(
    cluster: tuple[Balancer, list[Instance]],
    api: FakeBotAPI,
    database: str,
    broker: MosquittoServer,
) -> None:
    """Expiries and a window-end stop fall due while both instances' schedulers run."""
    driver = BotHarness(api, database)
    charger_id, token = await label_token(driver, database)  # seeds an approved listing
    engine = create_engine(database)
    open_db = create_session_factory(engine)
    now = utcnow()
    plug = SimTasmota(broker.url, "plug_0")  # the seeded charger's plug
    await plug.start()
    async with open_db() as db:  # a booking; its window is cut short once started
        booking = await bookings.request(
            db,
            user_id=OTHER_RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=now - timedelta(minutes=10),
            end=now + timedelta(hours=1),
            rules=RULES,
            now=now - timedelta(minutes=11),
        )
        await bookings.accept(
            db, booking_id=booking.id, merchant_id=MERCHANT, now=now - timedelta(minutes=11)
        )
        # and one that nobody starts: a no-show when its window ends
        missed = await bookings.request(
            db,
            user_id=RIDER,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=now + timedelta(hours=2),
            end=now + timedelta(hours=3),
            rules=RULES,
            now=now,
        )
        await bookings.accept(db, booking_id=missed.id, merchant_id=MERCHANT, now=now)
    await scan_and_start(driver, OTHER_RIDER, token)  # on either instance
    assert plug.on
    async with open_db() as db, transaction(db):  # both windows end now
        await db.execute(
            update(Booking)
            .where(Booking.id.in_((booking.id, missed.id)))
            .values(end_at=utcnow() + timedelta(seconds=2))
        )
    made = []
    async with open_db() as db:
        for hours in (1, 3, 5):  # three requests nobody answers
            start = now + timedelta(hours=hours)
            booking = await bookings.request(
                db,
                user_id=RIDER,
                charger_id=charger_id,
                device_kind="e_bike",
                device_model="",
                start=start,
                end=start + timedelta(minutes=30),
                rules=RULES,
                now=now,
            )
            made.append(booking.id)
        async with transaction(db):
            await db.execute(
                update(Booking)
                .where(Booking.id.in_(made))
                .values(respond_by=now - timedelta(seconds=1))
            )

    async def settled() -> bool:
        async with open_db() as db:
            left = await db.scalar(
                select(func.count())
                .select_from(Booking)
                .where(Booking.status == BookingStatus.REQUESTED)
            )
        return left == 0

    async def plug_off_and_settled() -> bool:
        return not plug.on and await settled()

    await wait_until(plug_off_and_settled, timeout=10, what="the bookings settled")
    await driver.expect(OTHER_RIDER, "the booked window ended", 0, timeout=20)
    await driver.expect(MERCHANT, "no-show", 0, timeout=20)
    await driver.expect(GROUP, "Order #", 0, timeout=20)
    await api.wait_idle(quiet=1.5)
    async with open_db() as db:
        expiries = await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "expired", AuditEntry.entity == "booking")
        )
        orders = await db.scalar(select(func.count()).select_from(Order))
    await engine.dispose()
    await plug.stop()
    assert expiries == 3
    assert count(api, RIDER, "did not answer in time") == 3
    assert count(api, MERCHANT, "You did not answer this booking in time") == 3
    assert orders == 1 and not plug.on
    assert count(api, OTHER_RIDER, "the booked window ended") == 1
    assert count(api, GROUP, "Order #") == 1
    assert count(api, OTHER_RIDER, "in about 5 minutes") == 1  # the warning, once
    assert count(api, RIDER, "did not start charging within your window") == 1
    assert count(api, MERCHANT, "no-show") == 1


async def test_an_update_delivered_to_both_instances_acts_once(
    cluster: tuple[Balancer, list[Instance]], api: FakeBotAPI
) -> None:
    """Telegram delivers an update again when it missed the answer; the repeat may land
    on the other instance, even while the first is still handling it (issue #12)."""
    _balancer, (first, second) = cluster
    body = json.dumps(
        {
            "update_id": 900_001,
            "message": {
                "message_id": 900_001,
                "date": 0,
                "chat": {"id": RIDER, "type": "private"},
                "from": {"id": RIDER, "is_bot": False, "first_name": "Ravi"},
                "text": "/help",
            },
        }
    )
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    after = api.last_message_id(RIDER)

    async def deliver(instance: Instance) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{instance.base}/tg", data=body, headers=headers) as response,
        ):
            return response.status

    assert await asyncio.gather(deliver(first), deliver(second), deliver(first)) == [200] * 3
    assert await deliver(second) == 200  # and once more, well after
    await api.wait_idle(quiet=0.5)
    answers = [m for m in api.bot_messages(RIDER) if m["message_id"] > after]
    assert len(answers) == 1, [plain(m) for m in answers]
