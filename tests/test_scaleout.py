"""Telemetry that scales out (issue #17): bridges in an MQTT share group split the
plugs' telemetry, and relay the changes only one of them heard, against a real
mosquitto and simulated plugs."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiomqtt
import pytest

from hardware_bridge.bridge import RELAY_PREFIX, Bridge
from hardware_bridge.mqtt import Message, MqttClient
from hardware_bridge.port import DeviceEvent, DeviceRef, EnergyReading, PowerChanged
from tests.plugs import SimPlug, SimShelly, SimTasmota
from tests.support.services import MosquittoServer
from tests.support.waiting import wait_until
from tests.test_shelly_forgery import _as, acl_broker  # noqa: F401 - a fixture

_n = itertools.count(1)


class Seen:
    """What one bridge's client received, and the events its bridge raised."""

    def __init__(self, bridge: Bridge) -> None:
        self.messages: list[Message] = []
        self.events: list[DeviceEvent] = []
        bridge.client.add_handler(self.messages.append)
        bridge.on_event(self.events.append)

    def shared(self) -> list[tuple[str, bytes]]:
        return [(m.topic, m.payload) for m in self.messages if m.shared]

    def of(self, device_id: str) -> list[Message]:
        return [m for m in self.messages if m.shared and device_id in m.topic]


async def make_bridge(url: str, name: str, group: str | None) -> Bridge:
    bridge = Bridge(MqttClient(url, name, backoff_initial=0.1, backoff_max=1.0, share_group=group))
    await bridge.start()
    assert bridge.client.connected
    return bridge


@pytest.fixture
async def pair(broker: MosquittoServer) -> AsyncIterator[tuple[Bridge, Bridge]]:
    group = f"group{next(_n)}"
    a = await make_bridge(broker.url, "alpha", group)
    b = await make_bridge(broker.url, "beta", group)
    yield a, b
    await a.stop()
    await b.stop()


async def publish_telemetry(url: str, batch: str, plugs: int) -> set[tuple[str, bytes]]:
    """Each plug's periodic telemetry, once, on every shared topic; each payload unique."""
    parts = urlsplit(url)
    sent: set[tuple[str, bytes]] = set()
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as pub:
        for i in range(plugs):
            wh = 1000 + i
            status = {"id": 0, "output": False, "apower": 0.0, "aenergy": {"total": wh}}
            note = {"method": "NotifyStatus", "params": {"switch:0": {"aenergy": {"total": wh}}}}
            messages = [
                (f"tele/{batch}-t{i}/SENSOR", {"ENERGY": {"Total": wh / 1000, "Power": 0}}),
                (f"tele/{batch}-t{i}/STATE", {"POWER": "OFF", "n": i}),
                (f"{batch}-s{i}/status/switch:0", status),
                (f"{batch}-s{i}/events/rpc", note),
            ]
            for topic, body in messages:
                payload = json.dumps(body).encode()
                await pub.publish(topic, payload, qos=1)
                sent.add((topic, payload))
    return sent


async def test_the_group_splits_the_telemetry_and_a_survivor_takes_all(
    pair: tuple[Bridge, Bridge], broker: MosquittoServer
) -> None:
    a, b = pair
    seen_a, seen_b = Seen(a), Seen(b)
    sent = await publish_telemetry(broker.url, "split", plugs=100)

    def got() -> set[tuple[str, bytes]]:
        return set(seen_a.shared()) | set(seen_b.shared())

    await wait_until(lambda: got() >= sent, 20, what="all telemetry received")
    ours_a = [m for m in seen_a.shared() if m in sent]
    ours_b = [m for m in seen_b.shared() if m in sent]
    # each message went to exactly one of them, and each got about half
    assert not set(ours_a) & set(ours_b)
    assert len(ours_a) + len(ours_b) == len(sent)
    assert 0.3 <= len(ours_a) / len(sent) <= 0.7, (len(ours_a), len(ours_b))
    # each reading (SENSOR, status/switch:0, NotifyStatus) raised one event, on one
    # instance
    readings = [e for s in (seen_a, seen_b) for e in s.events if isinstance(e, EnergyReading)]
    assert len(readings) == 300
    # a plug's availability is no telemetry: both hear it (retained, and a shared
    # subscription gets no retained message)
    parts = urlsplit(broker.url)
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as pub:
        await pub.publish("tele/split-lwt/LWT", "Online", qos=1, retain=True)
        dev = DeviceRef("tasmota", "split-lwt")
        await wait_until(lambda: a.known(dev).online is True and b.known(dev).online is True)
        late = await make_bridge(broker.url, "late", a.client.share_group)
        try:
            await wait_until(lambda: late.known(dev).online is True, what="the retained will")
        finally:
            await late.stop()
        await pub.publish("tele/split-lwt/LWT", "", qos=1, retain=True)

    # one instance stops: the broker hands everything to the one left
    await b.stop()
    again = await publish_telemetry(broker.url, "alone", plugs=50)
    await wait_until(lambda: set(seen_a.shared()) >= again, 20, what="the survivor got all")
    assert not set(seen_b.shared()) & again


@pytest.mark.parametrize("family", ["shelly", "tasmota"])
async def test_a_command_is_confirmed_wherever_the_plugs_report_lands(
    pair: tuple[Bridge, Bridge], broker: MosquittoServer, family: str
) -> None:
    """A switches; the plug's report of the change (Shelly's NotifyStatus) goes to either
    instance. A's command returns on the report relayed by B, without asking the plug
    (the Switch.GetStatus fallback after 1 s)."""
    a, b = pair
    seen_a = Seen(a)
    Seen(b)
    dev_id = f"{family}-scale-{next(_n)}"
    plug: SimPlug = (
        SimShelly(broker.url, dev_id, tele_period=3600)
        if family == "shelly"
        else SimTasmota(broker.url, dev_id, tele_period=3600)
    )
    dev = DeviceRef(family, dev_id)  # type: ignore[arg-type]
    await plug.start()
    try:
        await wait_until(lambda: a.known(dev).online is True and b.known(dev).online is True)
        by_relay = direct = 0
        on = False
        for _ in range(16):
            on = not on
            before, relayed = len(seen_a.of(dev_id)), a.relayed_in
            if on:
                st = await a.power_on(dev, failsafe_seconds=600, timeout=10)
            else:
                st = await a.power_off(dev, timeout=10)
            assert st.on is on and plug.on is on
            if len(seen_a.of(dev_id)) > before or family == "tasmota":
                direct += 1  # A heard the report itself (Tasmota's stat/… always)
            else:
                assert a.relayed_in > relayed  # only B heard it: the relay woke A
                by_relay += 1
            # every instance knows the plug's state
            await wait_until(lambda on=on: b.known(dev).on is on, what="B knows it")
            if family == "shelly" and by_relay >= 2 and direct >= 2:
                break
        if family == "shelly":
            assert by_relay >= 2 and direct >= 2, (by_relay, direct)
        # the plug was never polled: each command returned on a report. Each command
        # carries one meter question right behind it (its own round trip); the poll
        # would be a second question (Shelly) or an empty POWER query (Tasmota)
        if family == "shelly":
            sets = [p for _, p, _ in plug.commands if b"Switch.Set" in p]
            asked = [p for _, p, _ in plug.commands if b"Switch.GetStatus" in p]
            assert len(asked) == len(sets)
        else:
            polls = [p for t, p, _ in plug.commands if t.endswith("/POWER") and not p]
            assert not polls
    finally:
        await plug.stop()


async def test_changes_heard_by_one_are_known_by_all(
    pair: tuple[Bridge, Bridge], broker: MosquittoServer
) -> None:
    a, b = pair
    seen = {a: Seen(a), b: Seen(b)}
    dev_id = f"shelly-known-{next(_n)}"
    plug = SimShelly(broker.url, dev_id, tele_period=3600)
    dev = DeviceRef("shelly", dev_id)
    await plug.start()
    try:
        await wait_until(lambda: a.known(dev).online is True and b.known(dev).online is True)
        for _ in range(4):  # the button, pressed a few times: on, off, on, off
            await plug.press_button()
            await wait_until(
                lambda: a.known(dev).on is plug.on and b.known(dev).on is plug.on,
                what="both know the plug's relay",
            )
        # each press raised a PowerChanged for the services on one instance (the one
        # that heard it); the other one's is marked relayed
        changes = [e for s in seen.values() for e in s.events if isinstance(e, PowerChanged)]
        assert sum(not e.relayed for e in changes) >= 4
        assert any(e.relayed for e in changes)
        # offline, then back: every instance knows it
        await plug.drop_off()
        await wait_until(lambda: a.known(dev).online is False and b.known(dev).online is False, 10)
        await plug.start()
        await wait_until(lambda: a.known(dev).online is True and b.known(dev).online is True)
    finally:
        await plug.stop()


async def test_a_relay_message_that_is_not_ours_changes_nothing(
    pair: tuple[Bridge, Bridge], broker: MosquittoServer
) -> None:
    a, _ = pair
    dev = DeviceRef("shelly", f"shelly-forged-{next(_n)}")
    group = a.client.share_group
    parts = urlsplit(broker.url)
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as pub:
        good = {"driver": "shelly", "device": dev.device_id, "on": True, "online": None}
        bad = [
            (f"{RELAY_PREFIX}/{group}/x", b"not json"),
            (f"{RELAY_PREFIX}/{group}/x", json.dumps({**good, "driver": "ocpp"}).encode()),
            (f"{RELAY_PREFIX}/{group}/x", json.dumps({**good, "on": "yes"}).encode()),
            (f"{RELAY_PREFIX}/{group}/x", json.dumps({**good, "device": "a/b"}).encode()),
            (f"{RELAY_PREFIX}/another/x", json.dumps(good).encode()),
            (f"{RELAY_PREFIX}/{group}/{a.client.client_id}", json.dumps(good).encode()),
        ]
        for topic, payload in bad:
            await pub.publish(topic, payload, qos=1)
        # then a good one, which arrives after all of them
        await pub.publish(f"{RELAY_PREFIX}/{group}/x", json.dumps(good).encode(), qos=1)
    await wait_until(lambda: a.known(dev).on is True)
    assert a.relayed_in == 1


async def test_a_relayed_change_was_seen_live_if_its_hearer_saw_it_so(
    pair: tuple[Bridge, Bridge], broker: MosquittoServer
) -> None:
    """Pairing by button waits for a change seen as it happened: relayed from an
    instance that heard it live, it counts so here, though this one never heard the
    plug (its telemetry all went to the other)."""
    a, _ = pair
    events: list[DeviceEvent] = []
    a.on_event(events.append)
    group = a.client.share_group
    parts = urlsplit(broker.url)
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as pub:
        for n, discovered in enumerate((False, True)):
            dev = DeviceRef("shelly", f"shelly-live-{next(_n)}")
            change = {"driver": "shelly", "device": dev.device_id, "on": True}
            body = json.dumps({**change, "online": None, "discovered": discovered})
            await pub.publish(f"{RELAY_PREFIX}/{group}/other", body, qos=1)
            await wait_until(lambda n=n: len(events) > n)
            ev = events[n]
            assert isinstance(ev, PowerChanged) and ev.device == dev and ev.relayed
            assert ev.on is True and ev.discovered is discovered
            assert a.known(dev).on is True and a.known(dev).heard_at is not None


def test_without_a_group_nothing_is_shared() -> None:
    client = MqttClient("mqtt://127.0.0.1:1", "solo")
    bridge = Bridge(client)
    assert client.share_group is None
    assert not any(f.startswith("$share/") for f in client._filters)
    assert not any(f.startswith(RELAY_PREFIX) for f in client._filters)
    shared = Bridge(MqttClient("mqtt://127.0.0.1:1", "duo", share_group="cs"))
    filters = set(shared.client._filters)
    assert {
        "$share/cs/tele/+/SENSOR",
        "$share/cs/tele/+/STATE",
        "$share/cs/+/events/rpc",
        "$share/cs/+/status/switch:0",
        "tele/+/LWT",
        "+/online",
        "stat/+/POWER",
        "stat/+/RESULT",
        f"{RELAY_PREFIX}/cs/+",
    } <= filters
    assert len(bridge.client._filters) + 1 == len(filters)
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError):
            MqttClient("mqtt://127.0.0.1:1", "x", share_group=bad)


async def test_the_deploy_acl_lets_only_the_bots_relay(
    acl_broker: tuple[MosquittoServer, dict[str, str]],  # noqa: F811
) -> None:
    """deploy/mosquitto.acl: the bots' account takes shared subscriptions and relays; a
    plug's account cannot write a relay (it would switch a plug's known state on every
    instance), not even one named like the relay's topics."""
    server, accounts = acl_broker
    bot = _as(server.url, "chargeshare", accounts["chargeshare"])
    a = await make_bridge(bot, "alpha", "acl")
    b = await make_bridge(bot, "beta", "acl")
    victim = "shellyplus-victim"
    dev = DeviceRef("shelly", victim)
    plug = SimShelly(_as(server.url, victim, accounts[victim]), victim, tele_period=3600)
    await plug.start()
    parts = urlsplit(server.url)
    try:
        await wait_until(lambda: a.known(dev).online is True and b.known(dev).online is True)
        # the rogue plug forges a relay: the broker drops it
        async with aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            username="rogue-plug",
            password=accounts["rogue-plug"],
        ) as rogue:
            forged = {"driver": "shelly", "device": victim, "on": True, "online": None}
            await rogue.publish(f"{RELAY_PREFIX}/acl/rogue", json.dumps(forged), qos=1)
        # the real plug is switched on by its button, and all know it: the rogue's relay
        # would have arrived before
        await plug.press_button()
        await wait_until(lambda: a.known(dev).on is True and b.known(dev).on is True)
        # each relay received is one the other bridge sent (none forged got through)
        await wait_until(lambda: a.relayed_in + b.relayed_in == a.relayed_out + b.relayed_out)
        assert a.relayed_out + b.relayed_out >= 1
    finally:
        await plug.stop()
        await a.stop()
        await b.stop()
