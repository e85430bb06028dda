"""A simulated Shelly Gen2+ plug (switch:0, JSON-RPC over MQTT)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sandbox.plugs.base import SimPlug


class SimShelly(SimPlug):
    def __init__(self, url: str, device_id: str, **kw: float) -> None:
        super().__init__(url, device_id, **kw)
        self.will_topic = f"{device_id}/online"
        self.will_payload = "false"
        self.online_payload = "true"
        self._timer: asyncio.TimerHandle | None = None

    def command_filter(self) -> str:
        return f"{self.device_id}/rpc"

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": 0,
            "source": "MQTT",
            "output": self.on,
            "apower": self.watts if self.on else 0.0,
            "aenergy": {"total": round(self.energy_wh(), 3)},
        }
        if not self.meters_power or not self.meters_energy:
            del status["apower"]
        if not self.meters_energy:  # a switch without a meter (Shelly Plus 1)
            del status["aenergy"]
        return status

    async def _notify(self) -> None:
        d = self.device_id
        # NotifyStatus carries what changed (the output), not the whole status; the
        # meter comes with the next status, or a Switch.GetStatus reply
        change = {"id": 0, "output": self.on, "source": "MQTT"}
        note = {
            "src": d,
            "dst": f"{d}/events",
            "method": "NotifyStatus",
            "params": {"ts": time.time(), "switch:0": change},
        }
        await self.send(f"{d}/events/rpc", json.dumps(note))
        await self.send(f"{d}/status/switch:0", json.dumps(self.status()))

    async def handle(self, topic: str, payload: bytes) -> None:
        try:
            req = json.loads(payload)
        except ValueError:
            return
        src, method, params = req.get("src"), req.get("method"), req.get("params") or {}
        reply: dict[str, Any] = {"id": req.get("id"), "src": self.device_id, "dst": src}
        if method == "Switch.Set":
            if self.never_confirm:
                return
            was_on = self.on
            self.set_relay(bool(params.get("on")))
            self._arm(params.get("toggle_after"))
            reply["result"] = {"was_on": was_on}
            await self.send(f"{src}/rpc", json.dumps(reply))
            if was_on != self.on:
                await self._notify()
        elif method == "Switch.GetStatus":
            reply["result"] = self.status()
            await self.send(f"{src}/rpc", json.dumps(reply))
        else:
            reply["error"] = {"code": 404, "message": f"No handler for {method}"}
            await self.send(f"{src}/rpc", json.dumps(reply))

    def _arm(self, toggle_after: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if isinstance(toggle_after, int | float) and toggle_after > 0:

            def flip() -> None:
                self.set_relay(not self.on)
                self.spawn(self._notify())

            self._timer = asyncio.get_running_loop().call_later(float(toggle_after), flip)

    async def report(self) -> None:
        await self._notify()

    async def telemetry(self) -> None:
        await self.send(f"{self.device_id}/status/switch:0", json.dumps(self.status()))
