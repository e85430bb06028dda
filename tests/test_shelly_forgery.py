"""Forged Shelly replies (issue #12, item 3): a client that may publish on the bots'
reply topics must not confirm a command for a plug that never answered.

A rogue MQTT client forges `Switch.GetStatus` answers saying "output: true": guessed
ids, the right id (read off an open broker) from the wrong `src` or on the wrong
topic, and the old shared reply topic. The plug itself is dead or silent. Against a
real mosquitto: the bridge alone, the real bot (the start fails, nothing is billed),
and a broker with the ACL of deploy/ and one account per plug, where the rogue can
neither read the requests nor write another plug's topics.

On an open broker (no ACL) anyone who reads a request can answer it exactly as the
plug would, and anyone can publish a plug's NotifyStatus: only the ACL stops that
(README, "Smart plugs"), so the open-broker tests forge nothing a correct ACL allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import pytest
from sqlalchemy import update

from hardware_bridge.bridge import Bridge
from hardware_bridge.mqtt import MqttClient
from hardware_bridge.port import DeviceRef, NotConfirmed
from models import BookingStatus, Charger, SessionStatus
from models.base import utcnow
from services.tx import transaction
from tests.botapi import FakeBotAPI, plain
from tests.harness import BotHarness
from tests.plugs import SimPlug, SimShelly
from tests.support.services import MosquittoServer, start_mosquitto
from tests.test_flow_booking import MERCHANT, RIDER
from tests.test_flow_charging import (
    accepted_booking,
    api,  # noqa: F401  (fixture)
    bot,  # noqa: F401  (fixture)
    database,
    label_token,
    plugs,  # noqa: F401  (fixture)
    rows,
    until,
)

ROOT = Path(__file__).resolve().parent.parent
_n = itertools.count(1)

# "source" marks the forgeries, so that a spy can tell them from the plug's own messages
FORGED_STATUS = {"id": 0, "source": "rogue", "output": True, "aenergy": {"total": 1.0}}


class Rogue:
    """A hostile MQTT client that tries to make the bot believe ``victim`` is on.

    ``sniff``: it subscribes to the plugs' request topics and answers every request it
    can read with the right id but the wrong ``src``, or from its own reply topic. All
    the time it also sends guessed ids (1…30, as numbers and strings) to the victim's
    reply topic and to the old shared one. ``state``: it also publishes the victim's
    own state messages (a NotifyStatus, a status, online), which only an ACL stops."""

    def __init__(
        self,
        url: str,
        *,
        victim: str,
        own_id: str,
        instance: str,
        sniff: bool = True,
        state: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.victim, self.own_id, self.instance = victim, own_id, instance
        self.sniff, self.state = sniff, state
        self.username, self.password = username, password
        self.sniffed: list[str] = []  # request topics it could read
        self.forged = 0
        self._client: aiomqtt.Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Rogue:
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"rogue-{next(_n)}",
            username=self.username,
            password=self.password,
        )
        self._client = await self._stack.enter_async_context(client)
        if self.sniff:
            await client.subscribe("+/rpc", qos=1)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._guess())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=5)
        await self._stack.aclose()

    async def _send(self, topic: str, body: dict[str, Any] | str) -> None:
        assert self._client is not None
        payload = body if isinstance(body, str) else json.dumps(body)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.publish(topic, payload, qos=1)
            self.forged += 1

    def _reply(self, rpc_id: object, src: str, dst: str) -> dict[str, Any]:
        return {"id": rpc_id, "src": src, "dst": dst, "result": FORGED_STATUS}

    async def _listen(self) -> None:
        assert self._client is not None
        async for m in self._client.messages:
            topic = str(m.topic)
            if topic != f"{self.victim}/rpc" or not isinstance(m.payload, bytes):
                continue
            self.sniffed.append(topic)
            req = json.loads(m.payload)
            rpc_id, src = req.get("id"), req.get("src")
            # the right id, but its own name in "src", on the topic the bot listens to
            await self._send(f"{src}/rpc", self._reply(rpc_id, self.own_id, src))
            # the right id and the victim's name, but on the rogue's own reply topic
            own = f"chargeshare/{self.own_id}/{self.instance}"
            await self._send(f"{own}/rpc", self._reply(rpc_id, self.victim, src))

    async def _guess(self) -> None:
        new = f"chargeshare/{self.victim}/{self.instance}"
        old = f"chargeshare/{self.instance}"  # the shared reply topic of old
        while True:
            for rpc_id in range(1, 31):
                for guess in (rpc_id, str(rpc_id)):
                    await self._send(f"{new}/rpc", self._reply(guess, self.victim, new))
                    await self._send(f"{old}/rpc", self._reply(guess, self.victim, old))
            if self.state:
                v = self.victim
                note = {
                    "src": v,
                    "dst": f"{v}/events",
                    "method": "NotifyStatus",
                    "params": {"ts": 1.0, "switch:0": FORGED_STATUS},
                }
                await self._send(f"{v}/events/rpc", note)
                await self._send(f"{v}/status/switch:0", FORGED_STATUS)
                await self._send(f"{v}/online", "true")
            await asyncio.sleep(0.05)


async def make_bridge(url: str, **kw: Any) -> Bridge:
    bridge = Bridge(MqttClient(url, f"forgery{next(_n)}", backoff_initial=0.1, **kw))
    await bridge.start()
    assert bridge.client.connected
    return bridge


# -- the bridge on an open broker ----------------------------------------------------------


@pytest.mark.parametrize("plug_state", ["dead", "silent"])
async def test_forged_replies_do_not_confirm_a_plug_that_never_answered(
    broker: MosquittoServer, plug_state: str
) -> None:
    bridge = await make_bridge(broker.url)
    victim = f"shellyplus-victim-{next(_n)}"
    plug: SimPlug | None = None
    if plug_state == "silent":  # connected, but answers nothing
        plug = SimShelly(broker.url, victim)
        plug.silent = True
        await plug.start()
    try:
        async with Rogue(
            broker.url, victim=victim, own_id="rogue-plug", instance=bridge.client.client_id
        ) as rogue:
            with pytest.raises(NotConfirmed):
                await bridge.power_on(DeviceRef("shelly", victim), timeout=2.5)
            with pytest.raises(NotConfirmed):
                await bridge.state(DeviceRef("shelly", victim), timeout=1.5)
        # the rogue read the requests (an open broker) and answered each of them
        assert rogue.sniffed and rogue.forged > 100
        assert bridge.known(DeviceRef("shelly", victim)).on is None
    finally:
        if plug is not None:
            await plug.stop()
        await bridge.stop()


async def test_the_real_plug_is_still_believed_next_to_a_rogue(broker: MosquittoServer) -> None:
    """The checks do not get in the way of the plug itself (replies, NotifyStatus)."""
    bridge = await make_bridge(broker.url)
    plug = SimShelly(broker.url, f"shellyplus-good-{next(_n)}")
    await plug.start()
    dev = DeviceRef("shelly", plug.device_id)
    try:
        async with Rogue(
            broker.url, victim=plug.device_id, own_id="rogue-plug", instance=bridge.client.client_id
        ):
            assert (await bridge.power_on(dev, timeout=5)).on is True
            assert (await bridge.state(dev, timeout=5)).on is True
            assert (await bridge.power_off(dev, timeout=5)).on is False
        # every request carried a random id and the plug's own reply topic
        requests = [json.loads(p) for t, p, _ in plug.commands if t == f"{plug.device_id}/rpc"]
        assert len({r["id"] for r in requests}) == len(requests) >= 3
        assert all(isinstance(r["id"], str) and len(r["id"]) >= 16 for r in requests)
        src = f"chargeshare/{plug.device_id}/{bridge.client.client_id}"
        assert {r["src"] for r in requests} == {src}
    finally:
        await plug.stop()
        await bridge.stop()


# -- the real bot: Start on a silent plug with a rogue on the broker ----------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_start_fails_and_bills_nothing_despite_forged_replies(
    bot: BotHarness,  # noqa: F811
    database_url: str,
    broker: MosquittoServer,
    plugs: list,  # noqa: F811
) -> None:
    telegram: FakeBotAPI = bot.api
    charger_id, token = await label_token(bot, database_url)
    victim = f"shellyplus-flow-{next(_n)}"
    plug = SimShelly(broker.url, victim)
    plug.silent = True
    await plug.start()
    plugs.append(plug)
    async with database(database_url) as db, transaction(db):
        await db.execute(
            update(Charger)
            .where(Charger.id == charger_id)
            .values(plug_driver="shelly", plug_id=victim)
        )
    now = utcnow()
    await accepted_booking(database_url, charger_id, RIDER, now, now + timedelta(hours=1))
    assert bot.app is not None
    merchant_after = telegram.last_message_id(MERCHANT)

    async with Rogue(
        broker.url, victim=victim, own_id="rogue-plug", instance=bot.app.bridge.client.client_id
    ) as rogue:
        card = await bot.say(RIDER, f"/start {token}", "press Start")
        after = telegram.last_message_id(RIDER)
        await bot.press(RIDER, RIDER, card, "Start charging")
        refused = await bot.expect(RIDER, "did not confirm", after, timeout=10)
        assert "Nothing was billed" in plain(refused)
    assert rogue.sniffed and rogue.forged > 100

    charges, orders, booked = await rows(database_url)
    assert [s.status for s in charges] == [SessionStatus.FAILED]
    assert charges[0].started_at is None and not orders
    assert booked[0].status == BookingStatus.ACCEPTED
    await telegram.wait_idle()
    told = [plain(m) for m in telegram.bot_messages(MERCHANT) if m["message_id"] > merchant_after]
    assert not [text for text in told if "Charging started" in text]
    assert not [m for m in telegram.bot_messages(RIDER) if "Charging started" in plain(m)]


# -- the deploy ACL on a real mosquitto -----------------------------------------------------


@pytest.fixture
def acl_broker(tmp_path: Path) -> AsyncIterator[tuple[MosquittoServer, dict[str, str]]]:
    """mosquitto with deploy/mosquitto.acl and an account per plug (and the bots')."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (package mosquitto)")
    accounts = {
        "chargeshare": "bot-secret",
        "shellyplus-victim": "victim-secret",
        "rogue-plug": "rogue-secret",
    }
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(accounts.items()):
        args = [tool, "-b", *(["-c"] if i == 0 else []), str(passwd), user, password]
        subprocess.run(args, check=True, capture_output=True)
    acl = ROOT / "deploy" / "mosquitto.acl"
    config = f"password_file {passwd}\nacl_file {acl}\n"
    if os.geteuid() == 0:  # else mosquitto drops to its own user, who cannot read them
        config += "user root\n"
    server = start_mosquitto(tmp_path / "broker", extra_config=config)
    assert isinstance(server, MosquittoServer)
    yield server, accounts  # type: ignore[misc]
    server.stop()


def _as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return f"mqtt://{user}:{password}@{parts.hostname}:{parts.port}"


async def test_deploy_acl_confines_a_rogue_plug_to_its_own_topics(
    acl_broker: tuple[MosquittoServer, dict[str, str]],
) -> None:
    server, accounts = acl_broker
    bridge = await make_bridge(server.url, username="chargeshare", password=accounts["chargeshare"])
    victim = "shellyplus-victim"
    dev = DeviceRef("shelly", victim)
    plug = SimShelly(_as(server.url, victim, accounts[victim]), victim)
    await plug.start()
    # the bots' account sees everything that got through
    spy_messages: list[tuple[str, bytes]] = []
    parts = urlsplit(server.url)
    async with aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        username="chargeshare",
        password=accounts["chargeshare"],
    ) as spy:
        await spy.subscribe("#", qos=1)

        async def listen() -> None:
            async for m in spy.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                spy_messages.append((str(m.topic), payload))

        spying = asyncio.create_task(listen())
        try:
            # with the ACL the plug itself works: commands in, replies and status out
            assert (await bridge.power_on(dev, timeout=5)).on is True
            assert (await bridge.power_off(dev, timeout=5)).on is False

            plug.silent = True  # from now on the plug answers nothing
            async with Rogue(
                server.url,
                victim=victim,
                own_id="rogue-plug",
                instance=bridge.client.client_id,
                state=True,
                username="rogue-plug",
                password=accounts["rogue-plug"],
            ) as rogue:
                await rogue._send("rogue-plug/online", "true")  # its own topic: allowed
                with pytest.raises(NotConfirmed):
                    await bridge.power_on(dev, timeout=2.5)
            assert rogue.forged > 100 and not rogue.sniffed  # it could not read requests
            assert bridge.known(dev).on is False and not plug.on
            await until(lambda: _has(spy_messages, "rogue-plug/online"), 5)
            # the plug's own replies got through, on its own reply topic
            assert _has_now(spy_messages, f"chargeshare/{victim}/{bridge.client.client_id}/rpc")
            # nothing the rogue wrote on the victim's or the bots' topics got through
            through = [t for t, p in spy_messages if b"rogue" in p]
            assert through == [], through
        finally:
            spying.cancel()
            await plug.stop()
            await bridge.stop()


def _has_now(messages: list[tuple[str, bytes]], topic: str) -> bool:
    return any(t == topic for t, _ in messages)


async def _has(messages: list[tuple[str, bytes]], topic: str) -> bool:
    return _has_now(messages, topic)
