"""Shelly Gen2+ driver: JSON-RPC over MQTT, switch:0.

A Shelly answers a request on ``<src>/rpc``, with its own device id in the reply's
``src`` and the request's ``src`` in ``dst``. Each command's ``src`` here is
``chargeshare/<device id>/<instance>``, so each plug answers on a topic of its own that
the broker's ACL can reserve for it (``pattern write chargeshare/%u/+/rpc``). A reply is
taken only when its topic names the device, its ``src`` is that device, and its id is
one still waiting for that device; ids are random, so a client that cannot read the
requests cannot guess one.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hardware_bridge.drivers import Update, load_json
from hardware_bridge.mqtt import Message

Publish = Callable[[str, str], Awaitable[None]]

REPLY_PREFIX = "chargeshare"
# a request unanswered this long is forgotten (a dead plug must not grow the table)
PENDING_SECONDS = 120.0


def _switch_update(dev: str, retained: bool, status: Any, *, full: bool = False) -> list[Update]:
    """``full``: the whole status (a Switch.GetStatus reply, ``status/switch:0``), where
    no ``aenergy`` means a switch without a meter; a NotifyStatus carries only changes."""
    if not isinstance(status, dict):
        return []
    on = status.get("output")
    energy = None
    aenergy = status.get("aenergy")
    if (
        isinstance(aenergy, dict)
        and isinstance(aenergy.get("total"), int | float)
        and not isinstance(aenergy.get("total"), bool)
    ):
        energy = float(aenergy["total"]) / 1000.0  # Wh → kWh
    apower = status.get("apower")  # W, now
    watts = (
        float(apower) if isinstance(apower, int | float) and not isinstance(apower, bool) else None
    )
    if not isinstance(on, bool):
        on = None
    metered = False if full and on is not None and "aenergy" not in status else None
    if on is None and energy is None and watts is None:
        return []
    return [Update(dev, retained, on=on, energy_kwh=energy, power_w=watts, metered=metered)]


class ShellyDriver:
    family = "shelly"

    def __init__(self, publish: Publish, instance: str) -> None:
        if not instance or any(c in instance for c in "/+#"):
            raise ValueError(f"not usable in an MQTT topic level: {instance!r}")
        self._publish = publish
        self.instance = instance  # unique per bridge: the last level before /rpc
        self.filters = [
            "+/online",
            "+/events/rpc",
            "+/status/switch:0",
            f"{REPLY_PREFIX}/+/{instance}/rpc",
        ]
        # Shared: NotifyStatus (every change of output, power or energy: the bulk) and
        # status/switch:0 (the same, with status_ntf). A Switch.Set is confirmed by the
        # NotifyStatus, which may go to another instance: the bridge relays changes of
        # output to the others (bridge.py, relay). Direct: <id>/online (retained, rare:
        # each instance must know at start which plugs are online) and the replies, on a
        # topic of this instance's own.
        self.shared_filters = ["+/events/rpc", "+/status/switch:0"]
        # rpc id → (device, method, when sent)
        self._pending: dict[str, tuple[str, str, float]] = {}

    def src_for(self, device_id: str) -> str:
        return f"{REPLY_PREFIX}/{device_id}/{self.instance}"

    async def _rpc(self, device_id: str, method: str, params: dict[str, Any]) -> None:
        now = time.monotonic()
        for old in [k for k, (_, _, at) in self._pending.items() if at < now - PENDING_SECONDS]:
            del self._pending[old]
        rpc_id = secrets.token_hex(8)  # 64 random bits; JSON-RPC allows a string id
        self._pending[rpc_id] = (device_id, method, now)
        body = {"id": rpc_id, "src": self.src_for(device_id), "method": method, "params": params}
        await self._publish(f"{device_id}/rpc", json.dumps(body))

    def parse(self, msg: Message) -> list[Update]:
        r = msg.retain
        if msg.topic.startswith(f"{REPLY_PREFIX}/"):
            return self._reply(msg)
        dev, _, rest = msg.topic.partition("/")
        if rest == "online":
            text = msg.payload.decode(errors="replace").strip()
            if text in ("true", "false"):
                return [Update(dev, r, online=text == "true")]
            return []
        if rest not in ("status/switch:0", "events/rpc"):
            return []  # another family's topic (Tasmota's tele/…): its JSON is not parsed
        data = load_json(msg.payload)
        if rest == "status/switch:0":
            return _switch_update(dev, r, data, full=True)
        # NotifyStatus: what changed; NotifyFullStatus: everything, sent on connecting
        notify = ("NotifyStatus", "NotifyFullStatus")
        if rest == "events/rpc" and isinstance(data, dict) and data.get("method") in notify:
            params = data.get("params")
            return (
                _switch_update(dev, r, params.get("switch:0")) if isinstance(params, dict) else []
            )
        return []

    def _reply(self, msg: Message) -> list[Update]:
        parts = msg.topic.split("/")
        if len(parts) != 4 or parts[2] != self.instance or parts[3] != "rpc" or msg.retain:
            return []  # another instance's replies, or a retained (replayed) one
        dev = parts[1]
        data = load_json(msg.payload)
        if not isinstance(data, dict) or data.get("src") != dev:
            return []
        rpc_id = data.get("id")
        pending = self._pending.get(rpc_id) if isinstance(rpc_id, str) else None
        if pending is None or pending[0] != dev:
            return []  # not an id we are waiting for from this device
        del self._pending[str(rpc_id)]
        method = pending[1]
        if method == "Switch.GetStatus":
            return _switch_update(dev, False, data.get("result"), full=True)
        # Switch.Set answers only {"was_on": …}: the new output is confirmed by NotifyStatus
        # or by the Switch.GetStatus the bridge sends right after it (a device answers its
        # requests in order, so that reply shows the output set, and the meter with it).
        return []

    async def set_power(self, device_id: str, on: bool, failsafe_seconds: int | None) -> None:
        params: dict[str, Any] = {"id": 0, "on": on}
        if on and failsafe_seconds:
            params["toggle_after"] = failsafe_seconds
        await self._rpc(device_id, "Switch.Set", params)

    async def request_state(self, device_id: str) -> None:
        await self._rpc(device_id, "Switch.GetStatus", {"id": 0})

    async def request_meter(self, device_id: str) -> None:
        # the switch's status carries its meter (aenergy.total) with its output
        await self.request_state(device_id)
