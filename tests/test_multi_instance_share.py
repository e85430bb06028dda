"""Telemetry that scales out (issue #17), end to end: two `python -m bot` instances with
MQTT_SHARE_GROUP, so each plug report goes to one of them. A Shelly's start and stop are
sent by one instance while the plug's reports of them go to either; with the plug deaf
to Switch.GetStatus (the bridge's fallback question), each is confirmed only by the
report itself, relayed by the other instance when it got it."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from models import Charger
from models.db import create_engine, create_session_factory
from services.tx import transaction
from tests.botapi import FakeBotAPI
from tests.harness import ADMINS, GROUP, BotHarness
from tests.plugs import SimShelly
from tests.support.services import MosquittoServer
from tests.test_flow_charging import scan_and_start, stop
from tests.test_flow_listing import fill_charger, fill_shop
from tests.test_flow_qr import decode
from tests.test_multi_instance import (  # noqa: F401 - fixtures
    MERCHANT,
    RIDER,
    Balancer,
    Instance,
    api,
    database,
    redis_url,
    start_instance,
)

SHARE = {"MQTT_SHARE_GROUP": "chargeshare"}


class DeafShelly(SimShelly):
    """A Shelly that, once ``deaf``, answers no Switch.GetStatus: a command is then
    confirmed only by the plug's own report of the change (NotifyStatus)."""

    deaf = False
    asked = 0

    async def handle(self, topic: str, payload: bytes) -> None:
        if self.deaf and b"Switch.GetStatus" in payload:
            self.asked += 1
            return
        await super().handle(topic, payload)


@pytest.fixture
async def shared_cluster(
    api: FakeBotAPI,  # noqa: F811
    database: str,  # noqa: F811
    redis_url: str,  # noqa: F811
    broker: MosquittoServer,
) -> AsyncIterator[tuple[Balancer, list[Instance]]]:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    balancer = Balancer()
    await balancer.start()
    instances = [
        await start_instance(name, api, database, redis_url, broker.url, balancer, SHARE)
        for name in ("share-a", "share-b")
    ]
    try:
        await asyncio.gather(*(i.ready() for i in instances))
        yield balancer, instances
    finally:
        for instance in instances:
            await instance.stop()
        await balancer.stop()


async def test_a_start_is_confirmed_though_the_plugs_report_goes_to_the_other_instance(
    shared_cluster: tuple[Balancer, list[Instance]],
    api: FakeBotAPI,  # noqa: F811
    database: str,  # noqa: F811
    broker: MosquittoServer,
) -> None:
    balancer, (first, _second) = shared_cluster
    driver = BotHarness(api, database)
    # no telemetry of its own meanwhile: each change is one NotifyStatus and one
    # status/switch:0, which the broker hands the two instances in turn
    plug = DeafShelly(broker.url, "shellyplus1pm-share01", tele_period=3600)
    await plug.start()
    try:
        await fill_shop(driver)
        await fill_charger(driver, 1, "Shelly", "shellyplus1pm-share01", paired=True)
        summary = await driver.say(MERCHANT, "✅ Done, review the listing", "Submit for review")
        cursor = api.last_message_id(GROUP)
        label_cursor = api.last_message_id(MERCHANT)
        await driver.press(MERCHANT, MERCHANT, summary, "Submit")
        card = await driver.expect(GROUP, "New listing", cursor, timeout=10)
        await driver.press(GROUP, ADMINS[0], card, "Approve")
        label = await driver.expect(MERCHANT, "Print this label", label_cursor, timeout=15)
        token = decode(api, label).rsplit("=", 1)[1]
        engine = create_engine(database)
        async with create_session_factory(engine)() as db, transaction(db):
            await db.execute(  # open all day, so "now for 1 h" fits at any hour
                update(Charger).values(hours={str(d): [["00:00", "24:00"]] for d in range(7)})
            )
        await engine.dispose()

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

        # from here one instance takes every update, so it sends both commands; the
        # reports of the two changes go to the two instances in turn, so one of them
        # reaches the commanding instance only through the relay
        balancer.backends = [first.base]
        plug.deaf = True
        started = await scan_and_start(driver, RIDER, token)
        assert plug.on
        after = api.last_message_id(RIDER)
        await stop(driver, RIDER, started)
        await driver.expect(RIDER, "Order #", after, timeout=15)
        assert not plug.on
        sets = [p for _t, p, _r in plug.commands if b"Switch.Set" in p]
        assert len(sets) >= 2  # a start and a stop, not a retry
    finally:
        await plug.stop()
