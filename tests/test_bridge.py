"""The MQTT hardware bridge against a real mosquitto and simulated plugs."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiomqtt
import pytest

from hardware_bridge.bridge import Bridge
from hardware_bridge.mqtt import BridgeUnavailable, MqttClient
from hardware_bridge.port import (
    DeviceEvent,
    DeviceOfflineError,
    DeviceOnline,
    DeviceRef,
    DeviceWentOffline,
    EnergyReading,
    NotConfirmed,
    PowerChanged,
    utcnow,
)
from hardware_bridge.tasmota import pulse_time
from tests.plugs import SimPlug, SimShelly, SimTasmota
from tests.support.services import MosquittoServer, start_mosquitto
from tests.support.waiting import wait_until

_n = itertools.count(1)


async def make_bridge(url: str, name: str) -> Bridge:
    bridge = Bridge(MqttClient(url, name, backoff_initial=0.1, backoff_max=1.0))
    await bridge.start()
    assert bridge.client.connected
    return bridge


@pytest.fixture
async def bridge(broker: MosquittoServer) -> AsyncIterator[Bridge]:
    b = await make_bridge(broker.url, f"test{next(_n)}")
    yield b
    await b.stop()


def make_plug(family: str, url: str) -> tuple[SimPlug, DeviceRef]:
    dev_id = f"{family}-plug-{next(_n)}"
    plug: SimPlug = SimTasmota(url, dev_id) if family == "tasmota" else SimShelly(url, dev_id)
    return plug, DeviceRef(family, dev_id)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []

    def __call__(self, ev: DeviceEvent) -> None:
        self.events.append(ev)

    async def wait_for(self, kind: type, device: DeviceRef, timeout: float = 5.0) -> DeviceEvent:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events:
                if isinstance(ev, kind) and ev.device == device:
                    return ev
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind.__name__} for {device} in {self.events}")


FAMILIES = ["tasmota", "shelly"]


@pytest.mark.parametrize("family", FAMILIES)
async def test_power_on_and_off_are_confirmed_by_the_device(
    bridge: Bridge, broker: MosquittoServer, family: str
) -> None:
    rec = Recorder()
    bridge.on_event(rec)
    plug, dev = make_plug(family, broker.url)
    await plug.start()
    try:
        st = await bridge.power_on(dev, failsafe_seconds=60, timeout=5)
        assert st.on is True and plug.on is True
        assert st.at.tzinfo is not None
        ev = await rec.wait_for(PowerChanged, dev)
        assert isinstance(ev, PowerChanged) and ev.on is True
        # the device-side failsafe went with the command
        if family == "tasmota":
            sent = [(t, p) for t, p, _ in plug.commands if t.endswith("/PulseTime")]
            assert sent[-1] == (f"cmnd/{dev.device_id}/PulseTime", b"160")
        else:
            sets = [json.loads(p) for _, p, _ in plug.commands if b"Switch.Set" in p]
            assert sets[-1]["params"] == {"id": 0, "on": True, "toggle_after": 60}
        st = await bridge.power_off(dev, timeout=5)
        assert st.on is False and plug.on is False
    finally:
        await plug.stop()


def test_pulse_time_encoding() -> None:
    assert pulse_time(0) == 0
    assert pulse_time(5) == 50
    assert pulse_time(12) == 112
    assert pulse_time(3600) == 3700


@pytest.mark.parametrize("family", FAMILIES)
async def test_energy_readings_arrive_and_a_fresh_one_can_be_requested(
    bridge: Bridge, broker: MosquittoServer, family: str
) -> None:
    rec = Recorder()
    bridge.on_event(rec)
    plug, dev = make_plug(family, broker.url)
    plug.watts = 360_000.0  # 0.1 kWh per second: visible growth in a test
    await plug.start()
    try:
        first = await bridge.state(dev, timeout=3)
        assert first.energy_kwh is not None and first.on is False
        await bridge.power_on(dev, timeout=5)
        # 0.03 kWh drawn (about 0.3 s), then a fresh reading must show it
        await wait_until(lambda: plug.energy_wh() / 1000 > first.energy_kwh + 0.03)
        fresh = await bridge.state(dev, timeout=3)
        assert fresh.energy_kwh is not None and fresh.energy_kwh > first.energy_kwh + 0.02
        # periodic telemetry also arrives as events
        ev = await rec.wait_for(EnergyReading, dev)
        assert isinstance(ev, EnergyReading) and ev.total_kwh >= 0
    finally:
        await plug.stop()


def _after_last_switch(plug: SimPlug, on: bool) -> list[str]:
    """What the plug was asked from its last power command on, in order: the command
    (``POWER ON``/``Switch.Set``), then each question (``Status 8``, ``POWER?``,
    ``Switch.GetStatus``)."""
    said: list[str] = []
    for topic, payload, _ in plug.commands:
        kind = topic.rsplit("/", 1)[-1]
        if kind == "rpc":
            said.append(json.loads(payload)["method"])
        elif kind != "PulseTime":
            said.append(f"{kind} {payload.decode()}".strip())
    command = ("POWER ON" if on else "POWER OFF") if isinstance(plug, SimTasmota) else "Switch.Set"
    last = max(i for i, what in enumerate(said) if what == command)
    return said[last:]


@pytest.mark.parametrize("family", FAMILIES)
async def test_power_commands_carry_the_meter_total_read_in_their_round_trip(
    bridge: Bridge, broker: MosquittoServer, family: str
) -> None:
    """Issue #17: the meter question goes right behind the power command (no wait in
    between), and the answer's state carries the total read after the switch: the
    start reading with the power-on, the final one with the power-off."""
    plug, dev = make_plug(family, broker.url)
    plug.watts = 360_000.0  # 0.1 kWh a second
    plug.tele_period = 3600.0  # no periodic report: only the round trip can tell the total
    await plug.start()
    try:
        sent_on = utcnow()
        on = await bridge.power_on(dev, timeout=5)
        assert on.on is True and on.metered is True
        assert on.energy_at is not None and on.energy_at >= sent_on
        assert on.energy_kwh == pytest.approx(plug.energy_wh() / 1000, abs=0.05)
        question = "Status 8" if family == "tasmota" else "Switch.GetStatus"
        # the answer may come before the plug has logged the question sent behind it
        await wait_until(lambda: len(_after_last_switch(plug, True)) >= 2)
        assert _after_last_switch(plug, True) == [
            "POWER ON" if family == "tasmota" else "Switch.Set",
            question,
        ]
        # the meter advances; the power-off's answer has its final total
        await wait_until(lambda: plug.energy_wh() / 1000 > on.energy_kwh + 0.05)
        sent_off = utcnow()
        off = await bridge.power_off(dev, timeout=5)
        assert off.on is False and plug.on is False
        assert off.energy_at is not None and off.energy_at >= sent_off
        final = plug.energy_wh() / 1000  # the relay is off: it stays there
        assert off.energy_kwh == pytest.approx(final, abs=1e-5)
        assert off.energy_kwh > on.energy_kwh + 0.05
        # one question, pipelined behind the command: no state question after it
        command = "POWER OFF" if family == "tasmota" else "Switch.Set"
        await wait_until(lambda: len(_after_last_switch(plug, False)) >= 2)
        assert _after_last_switch(plug, False) == [command, question]
    finally:
        await plug.stop()


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_plug_without_a_meter_is_not_waited_for_a_reading(
    bridge: Bridge, broker: MosquittoServer, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug that has no meter says so in the same round trip (Status 8 without
    ENERGY; a switch status without aenergy): its commands and state() return on that
    answer, never after a wait for a reading that cannot come."""
    import hardware_bridge.bridge as bridge_module

    # a wait for a reading would now last 60 s: the calls below would time out
    monkeypatch.setattr(bridge_module, "ENERGY_WAIT", 60.0)
    plug, dev = make_plug(family, broker.url)
    plug.meters_energy = False
    await plug.start()
    try:
        async with asyncio.timeout(20):
            # the first command, to a plug never heard from: its answer tells
            off = await bridge.power_off(dev, timeout=5)
            assert off.on is False and off.energy_kwh is None and off.metered is False
            on = await bridge.power_on(dev, timeout=5)
            assert on.on is True and on.energy_kwh is None and on.metered is False
            asked = await bridge.state(dev, timeout=5)
            assert asked.on is True and asked.energy_kwh is None
            off = await bridge.power_off(dev, timeout=5)
            assert off.on is False and off.energy_kwh is None
    finally:
        await plug.stop()


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_plug_that_never_confirms_times_out(
    bridge: Bridge, broker: MosquittoServer, family: str
) -> None:
    plug, dev = make_plug(family, broker.url)
    plug.never_confirm = True
    await plug.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(NotConfirmed):
            await bridge.power_on(dev, timeout=1.0)
        assert time.monotonic() - t0 < 1.5
    finally:
        await plug.stop()


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_plug_that_drops_off_is_reported_offline_by_its_last_will(
    bridge: Bridge, broker: MosquittoServer, family: str
) -> None:
    rec = Recorder()
    bridge.on_event(rec)
    plug, dev = make_plug(family, broker.url)
    await plug.start()
    await rec.wait_for(DeviceOnline, dev)
    await bridge.power_on(dev, timeout=5)
    await plug.drop_off()
    await rec.wait_for(DeviceWentOffline, dev, timeout=10)
    assert bridge.known(dev).online is False
    with pytest.raises(DeviceOfflineError):
        await bridge.power_on(dev, timeout=2)
    # it comes back: online again and commands work
    await plug.start()
    await rec.wait_for(DeviceOnline, dev)
    assert (await bridge.power_off(dev, timeout=5)).on is False
    await plug.stop()


async def test_commands_are_never_published_retained(
    bridge: Bridge, broker: MosquittoServer
) -> None:
    parts = urlsplit(broker.url)
    seen: list[tuple[str, bool]] = []
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as spy:
        await spy.subscribe("cmnd/#", qos=1)
        await spy.subscribe("+/rpc", qos=1)

        async def listen() -> None:
            async for m in spy.messages:
                seen.append((str(m.topic), bool(m.retain)))

        task = asyncio.create_task(listen())
        plugs = [make_plug(f, broker.url) for f in FAMILIES]
        for plug, _ in plugs:
            await plug.start()
        try:
            for _plug, dev in plugs:
                await bridge.power_on(dev, failsafe_seconds=30, timeout=5)
                await bridge.state(dev, timeout=5)
                await bridge.power_off(dev, timeout=5)
            # the spy has seen every command the plugs got (then the checks below)
            topics = {topic for plug, _ in plugs for topic, _, _ in plug.commands}
            commands = sum(len(plug.commands) for plug, _ in plugs)
            await wait_until(lambda: sum(t in topics for t, _ in seen) >= commands)
        finally:
            task.cancel()
            for plug, _ in plugs:
                await plug.stop()
    assert any(t.startswith("cmnd/") for t, _ in seen)
    assert any(t.endswith("/rpc") for t, _ in seen)
    assert not [s for s in seen if s[1]], seen
    for plug, _ in plugs:
        assert plug.commands and not [c for c in plug.commands if c[2]]
    # nothing retained on a command topic either
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as late:
        await late.subscribe("cmnd/#")
        await late.subscribe("+/rpc")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async for m in late.messages:
                    raise AssertionError(f"retained command {m.topic}")


async def test_broker_restart_reconnects_resubscribes_and_rereads(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_mosquitto(tmp_path_factory.mktemp("mosquitto-restart"))
    try:
        b = await make_bridge(server.url, "restart")
        rec = Recorder()
        b.on_event(rec)
        plugs = [make_plug(f, server.url) for f in FAMILIES]
        for plug, dev in plugs:
            await plug.start()
            await b.power_on(dev, timeout=5)
        assert b.reread_count == 1 and b.client.reconnects == 0
        await asyncio.to_thread(server.kill)  # the broker goes away ...
        await wait_until(lambda: not b.client.connected, 10, what="the bridge disconnected")
        # ... meanwhile a command fails clearly instead of hanging
        b.client.publish_wait = 0.1
        with pytest.raises(BridgeUnavailable):
            await b.client.publish("cmnd/nobody/POWER", "ON")
        b.client.publish_wait = 2.0
        await asyncio.to_thread(server.start_again)  # ... and comes back on the same port
        await wait_until(
            lambda: b.client.reconnects >= 1 and b.reread_count >= 2,
            15,
            what="the bridge reconnected and re-read its plugs",
        )
        for plug, dev in plugs:
            await plug.wait_ready()
            n = len(plug.commands)
            st = await b.power_off(dev, timeout=5)  # subscriptions are back: confirmed
            assert st.on is False and plug.on is False
            assert len(plug.commands) > n
        # the re-read after reconnection asked the devices for their state
        assert b.reread_count == 2 and b.client.reconnects == 1
        await b.stop()
        for plug, _ in plugs:
            await plug.stop()
    finally:
        server.stop()


async def test_two_bridges_do_not_kick_each_other(broker: MosquittoServer) -> None:
    a = await make_bridge(broker.url, "alpha")
    b = await make_bridge(broker.url, "beta")
    c = await make_bridge(broker.url, "alpha")  # same name, still a distinct client id
    assert len({a.client.client_id, b.client.client_id, c.client.client_id}) == 3
    plug, dev = make_plug("shelly", broker.url)
    await plug.start()
    try:
        for br in (a, b, c, a):
            assert (await br.power_on(dev, timeout=5)).on is True
            assert (await br.power_off(dev, timeout=5)).on is False
        await asyncio.sleep(0.5)  # that nobody is kicked has no event: a quiet while
        for br in (a, b, c):
            assert br.client.connected and br.client.reconnects == 0
    finally:
        await plug.stop()
        for br in (a, b, c):
            await br.stop()


async def test_stop_ends_the_client_even_when_aiomqtt_swallows_the_cancel(
    broker: MosquittoServer, monkeypatch
) -> None:
    """aiomqtt's exit raises MqttError in place of the cancellation when the broker
    does not confirm the DISCONNECT in time; stop() must still end the client, and
    the client must not connect again."""
    client = MqttClient(broker.url, "stopper", backoff_initial=0.05)
    client.subscribe("stopper/#")
    await client.start()
    await client.wait_connected(5)
    original = aiomqtt.Client.__aexit__

    async def timed_out(self, *exc_info):
        await original(self, *exc_info)
        raise aiomqtt.MqttError("Operation timed out")

    monkeypatch.setattr(aiomqtt.Client, "__aexit__", timed_out)
    began = time.monotonic()
    await asyncio.wait_for(client.stop(), 5)
    assert time.monotonic() - began < 2
    await asyncio.sleep(0.3)  # longer than the back-off: no new connection
    assert client.connections == 1 and not client.connected


async def test_the_bridge_socket_sends_small_packets_at_once(broker: MosquittoServer) -> None:
    """TCP_NODELAY on the bridge's connection: a command right after another small
    packet must not wait for the broker's delayed ACK (Nagle, ~40 ms on Linux)."""
    client = MqttClient(broker.url, "nodelay", backoff_initial=0.05)
    await client.start()
    try:
        await client.wait_connected(5)
        assert client._client is not None
        # aiomqtt keeps paho's client as ``_client``; read only, to see the socket
        sock = client._client._client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        await client.stop()


class _AckWhenAllSent:
    """A client whose broker acknowledges nothing until ``expected`` messages were
    handed to it: a command whose messages wait for each other's acknowledgement
    would never get past its first (the test then times out)."""

    client_id = "pipelined"
    share_group = None

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.published: list[tuple[str, str]] = []
        self.all_sent = asyncio.Event()
        self.handlers: list = []

    def subscribe(self, *_args, **_kwargs) -> None:
        pass

    def add_handler(self, handler) -> None:
        self.handlers.append(handler)

    def add_connect_hook(self, _hook) -> None:
        pass

    async def publish(self, topic: str, payload: str) -> None:
        self.published.append((topic, payload))
        if len(self.published) >= self.expected:
            self.all_sent.set()
        await self.all_sent.wait()  # the broker's acknowledgement


async def test_a_commands_messages_leave_back_to_back() -> None:
    """Issue #17: Tasmota's PulseTime, POWER and the meter question are handed to the
    broker together, not one acknowledgement apart."""
    from hardware_bridge.mqtt import Message

    client = _AckWhenAllSent(expected=3)
    bridge = Bridge(client)  # type: ignore[arg-type]
    device = DeviceRef("tasmota", "pipe")

    async def plug_answers() -> None:
        await client.all_sent.wait()
        for topic, payload in (
            ("stat/pipe/RESULT", '{"POWER":"ON"}'),
            ("stat/pipe/STATUS8", '{"StatusSNS":{"ENERGY":{"Total":1.5,"Power":0}}}'),
        ):
            for handler in client.handlers:
                await handler(Message(topic, payload.encode(), False))

    answering = asyncio.create_task(plug_answers())
    state = await asyncio.wait_for(bridge.power_on(device, failsafe_seconds=600, timeout=5), 5)
    await answering
    assert [t for t, _ in client.published] == [
        "cmnd/pipe/PulseTime",
        "cmnd/pipe/POWER",
        "cmnd/pipe/Status",
    ]
    assert state.on is True and state.energy_kwh == 1.5
