"""The drivers' parse() on real Tasmota and Shelly Gen2+ messages (issue #13).

The messages are in tests/data/*.json, each with where it came from (the vendors'
documentation, captures quoted in public projects and Home Assistant's tests),
including odd ones: POWER1 of a multi-relay device, per-phase totals, JSON on the
POWER topic, missing fields, non-JSON, retained snapshots, other families' topics.
Shelly replies are also checked against forgeries: only the plug a request went
to, on its own reply topic, with the id it was sent, is believed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hardware_bridge.drivers import Update
from hardware_bridge.mqtt import Message
from hardware_bridge.shelly import PENDING_SECONDS, ShellyDriver
from hardware_bridge.tasmota import TasmotaDriver

DATA = Path(__file__).parent / "data"
INSTANCE = "chargeshare-host-4242-0a1b2c3d"


def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


TASMOTA = _load("tasmota_messages.json")
SHELLY = _load("shelly_messages.json")


class Sent:
    """The drivers' publish: records what they send."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    async def __call__(self, topic: str, payload: str) -> None:
        self.messages.append((topic, payload))


def _expected(case: dict[str, Any]) -> list[Update]:
    retained = bool(case.get("retain", False))
    return [
        Update(
            e["device"],
            retained,
            on=e.get("on"),
            online=e.get("online"),
            energy_kwh=e.get("energy_kwh"),
            power_w=e.get("power_w"),
            metered=e.get("metered"),
        )
        for e in case["expect"]
    ]


def _same(got: list[Update], want: list[Update]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        energy_ok = (g.energy_kwh is None) == (w.energy_kwh is None) and (
            g.energy_kwh is None or g.energy_kwh == pytest.approx(w.energy_kwh)
        )
        if (g.device_id, g.retained, g.on, g.online, g.power_w, g.metered) != (
            w.device_id,
            w.retained,
            w.on,
            w.online,
            w.power_w,
            w.metered,
        ) or not energy_ok:
            return False
    return True


def _message(case: dict[str, Any]) -> Message:
    return Message(case["topic"], case["payload"].encode(), bool(case.get("retain", False)))


@pytest.mark.parametrize("case", TASMOTA["cases"], ids=lambda c: c["name"])
def test_tasmota_parse(case: dict[str, Any]) -> None:
    got = TasmotaDriver(Sent()).parse(_message(case))
    assert _same(got, _expected(case)), (case["source"], got)


@pytest.mark.parametrize("case", SHELLY["cases"], ids=lambda c: c["name"])
def test_shelly_parse(case: dict[str, Any]) -> None:
    got = ShellyDriver(Sent(), INSTANCE).parse(_message(case))
    assert _same(got, _expected(case)), (case["source"], got)


async def _asked(driver: ShellyDriver, sent: Sent, device: str, method: str) -> dict[str, Any]:
    """Send the request a reply answers; returns it as the plug received it."""
    if method == "Switch.Set":
        await driver.set_power(device, True, None)
    else:
        await driver.request_state(device)
    topic, payload = sent.messages[-1]
    assert topic == f"{device}/rpc"
    request = json.loads(payload)
    assert request["method"] == method
    return request


def _reply(case: dict[str, Any], request: dict[str, Any], **changes: Any) -> Message:
    topic = case["topic"].replace("{instance}", INSTANCE)
    payload = case["payload"].replace("{id}", request["id"]).replace("{dst}", request["src"])
    return Message(changes.get("topic", topic), payload.encode(), changes.get("retain", False))


@pytest.mark.parametrize("case", SHELLY["replies"], ids=lambda c: c["name"])
async def test_shelly_reply_to_our_request(case: dict[str, Any]) -> None:
    sent = Sent()
    driver = ShellyDriver(sent, INSTANCE)
    request = await _asked(driver, sent, case["device"], case["method"])
    # the reply topic is the plug's own, under our instance
    assert request["src"] == f"chargeshare/{case['device']}/{INSTANCE}"
    assert _same(driver.parse(_reply(case, request)), _expected(case)), case["source"]
    # an id is answered once: the same frame again (a replay) counts for nothing
    assert driver.parse(_reply(case, request)) == []


async def test_shelly_replies_that_are_not_the_plugs_own_are_ignored() -> None:
    case = SHELLY["replies"][0]  # a GetStatus answer saying "output": true
    device = case["device"]
    sent = Sent()
    driver = ShellyDriver(sent, INSTANCE)
    request = await _asked(driver, sent, device, case["method"])
    other = await _asked(driver, sent, "shellyplus1-rogue0000000", case["method"])
    genuine = _reply(case, request)
    payload = json.loads(genuine.payload)

    def frame(**fields: Any) -> bytes:
        return json.dumps(payload | fields).encode()

    forged = [
        # the right id from the wrong src
        Message(genuine.topic, frame(src="shellyplus1-rogue0000000"), False),
        # the right id and src, on another plug's reply topic (the one the ACL lets it use)
        Message(f"chargeshare/shellyplus1-rogue0000000/{INSTANCE}/rpc", frame(), False),
        # another plug's pending id, on this plug's topic
        Message(genuine.topic, frame(id=other["id"]), False),
        # guessed ids: numbers, as the old sequential ids were, and a made-up string
        Message(genuine.topic, frame(id=1), False),
        Message(genuine.topic, frame(id=2), False),
        Message(genuine.topic, frame(id="0123456789abcdef"), False),
        # another instance's reply topic, and the old shared one
        Message(f"chargeshare/{device}/another-instance/rpc", frame(), False),
        Message(f"chargeshare/{INSTANCE}/rpc", frame(), False),
        # a retained frame is a replay
        Message(genuine.topic, genuine.payload, True),
        # not JSON, not an object
        Message(genuine.topic, b"output: true", False),
        Message(genuine.topic, b"[1, 2]", False),
    ]
    for message in forged:
        assert driver.parse(message) == [], message
    # none of them used up the real request: the plug's own answer still counts
    assert driver.parse(genuine) == [Update(device, False, on=True, metered=False)]


async def test_shelly_request_ids_are_random_and_forgotten_when_old() -> None:
    sent = Sent()
    driver = ShellyDriver(sent, INSTANCE)
    for _ in range(20):
        await driver.request_state("shellyplus1-a8032abc7158")
    ids = [json.loads(p)["id"] for _, p in sent.messages]
    assert len(set(ids)) == 20 and all(isinstance(i, str) and len(i) == 16 for i in ids)
    # a dead plug's unanswered requests do not pile up: old ones are dropped
    driver._pending = {
        k: (dev, method, at - PENDING_SECONDS - 1)
        for k, (dev, method, at) in driver._pending.items()
    }
    await driver.request_state("shellyplus1-a8032abc7158")
    assert len(driver._pending) == 1


def test_a_shelly_instance_name_must_be_one_topic_level() -> None:
    for bad in ("a/b", "a+", "#", ""):
        with pytest.raises(ValueError):
            ShellyDriver(Sent(), bad)


def test_power_now_from_the_meter() -> None:
    """The live card's "power now" (issue #16): Tasmota ENERGY.Power (per phase summed),
    Shelly apower; absent where the meter does not say."""
    tasmota = TasmotaDriver(Sent())
    sensor = '{"ENERGY":{"Total":1.25,"Power":[1200,35]}}'
    (got,) = tasmota.parse(Message("tele/plug1/SENSOR", sensor.encode(), False))
    assert (got.energy_kwh, got.power_w) == (1.25, 1235.0)
    (got,) = tasmota.parse(Message("tele/plug1/SENSOR", b'{"ENERGY":{"Total":1.25}}', False))
    assert got.power_w is None
    shelly = ShellyDriver(Sent(), INSTANCE)
    notify = {
        "src": "shellyplug-1",
        "method": "NotifyStatus",
        "params": {"switch:0": {"output": True, "apower": 870.5, "aenergy": {"total": 10}}},
    }
    (got,) = shelly.parse(Message("shellyplug-1/events/rpc", json.dumps(notify).encode(), False))
    assert (got.on, got.power_w, got.energy_kwh) == (True, 870.5, 0.01)
