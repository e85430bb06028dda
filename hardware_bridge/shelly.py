"""Shelly Gen2+ driver: JSON-RPC over MQTT, switch:0."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from hardware_bridge.drivers import Update, load_json
from hardware_bridge.mqtt import Message

Publish = Callable[[str, str], Awaitable[None]]


def _switch_update(dev: str, retained: bool, status: Any) -> list[Update]:
    if not isinstance(status, dict):
        return []
    on = status.get("output")
    energy = None
    aenergy = status.get("aenergy")
    if isinstance(aenergy, dict) and isinstance(aenergy.get("total"), int | float):
        energy = float(aenergy["total"]) / 1000.0  # Wh → kWh
    if not isinstance(on, bool):
        on = None
    if on is None and energy is None:
        return []
    return [Update(dev, retained, on=on, energy_kwh=energy)]


class ShellyDriver:
    family = "shelly"

    def __init__(self, publish: Publish, src: str) -> None:
        self._publish = publish
        self.src = src  # unique per bridge instance: replies come to <src>/rpc
        self.filters = ["+/online", "+/events/rpc", "+/status/switch:0", f"{src}/rpc"]
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, str]] = {}  # rpc id → (device, method)

    async def _rpc(self, device_id: str, method: str, params: dict[str, Any]) -> None:
        rpc_id = next(self._ids)
        self._pending[rpc_id] = (device_id, method)
        body = {"id": rpc_id, "src": self.src, "method": method, "params": params}
        await self._publish(f"{device_id}/rpc", json.dumps(body))

    def parse(self, msg: Message) -> list[Update]:
        r = msg.retain
        if msg.topic == f"{self.src}/rpc":
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
            return _switch_update(dev, r, data)
        if rest == "events/rpc" and isinstance(data, dict) and data.get("method") == "NotifyStatus":
            params = data.get("params") or {}
            return _switch_update(dev, r, params.get("switch:0"))
        return []

    def _reply(self, msg: Message) -> list[Update]:
        data = load_json(msg.payload)
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            return []
        pending = self._pending.pop(data["id"], None)
        if pending is None:
            return []
        dev, method = pending
        result = data.get("result")
        if method == "Switch.GetStatus":
            return _switch_update(dev, False, result)
        # Switch.Set answers only {"was_on": …}: the new output is confirmed by NotifyStatus
        # or by a Switch.GetStatus that the bridge sends when that is slow to come.
        return []

    async def set_power(self, device_id: str, on: bool, failsafe_seconds: int | None) -> None:
        params: dict[str, Any] = {"id": 0, "on": on}
        if on and failsafe_seconds:
            params["toggle_after"] = failsafe_seconds
        await self._rpc(device_id, "Switch.Set", params)

    async def request_state(self, device_id: str) -> None:
        await self._rpc(device_id, "Switch.GetStatus", {"id": 0})
