"""A simulated Tasmota plug (default FullTopic %prefix%/%topic%/)."""

from __future__ import annotations

import asyncio
import json

from sandbox.plugs.base import SimPlug


class SimTasmota(SimPlug):
    def __init__(self, url: str, topic: str, **kw: float) -> None:
        super().__init__(url, topic, **kw)
        self.will_topic = f"tele/{topic}/LWT"
        self.will_payload = "Offline"
        self.online_payload = "Online"
        self.pulse_time = 0
        self._pulse: asyncio.TimerHandle | None = None

    def command_filter(self) -> str:
        return f"cmnd/{self.device_id}/#"

    def _state(self) -> str:
        return "ON" if self.on else "OFF"

    def _energy(self) -> dict[str, float]:
        energy = {"Total": round(self.energy_wh() / 1000.0, 5)}
        if self.meters_power:
            energy["Power"] = self.watts if self.on else 0
        return energy

    async def _report(self) -> None:
        t = self.device_id
        await self.send(f"stat/{t}/RESULT", json.dumps({"POWER": self._state()}))
        await self.send(f"stat/{t}/POWER", self._state())

    async def handle(self, topic: str, payload: bytes) -> None:
        cmd = topic.rsplit("/", 1)[-1].upper()
        value = payload.decode().strip()
        t = self.device_id
        if cmd == "POWER":
            if self.never_confirm:
                return
            if value.upper() in ("ON", "1"):
                self.set_relay(True)
                self._arm_pulse()
            elif value.upper() in ("OFF", "0"):
                self.set_relay(False)
            elif value.upper() in ("TOGGLE", "2"):
                self.set_relay(not self.on)
            await self._report()
        elif cmd == "PULSETIME":
            if value:
                self.pulse_time = int(value)
            await self.send(
                f"stat/{t}/RESULT", json.dumps({"PulseTime1": {"Set": self.pulse_time}})
            )
        elif cmd == "STATUS" and value == "8":
            sns: dict[str, object] = {"Time": "2026-01-01T00:00:00"}
            if self.meters_energy:  # a plug without a meter answers with no ENERGY
                sns["ENERGY"] = self._energy()
            await self.send(f"stat/{t}/STATUS8", json.dumps({"StatusSNS": sns}))

    def _arm_pulse(self) -> None:
        if self._pulse is not None:
            self._pulse.cancel()
            self._pulse = None
        pt = self.pulse_time
        if pt <= 0:
            return
        seconds = pt / 10 if pt <= 111 else pt - 100

        def off() -> None:
            self.set_relay(False)
            self.spawn(self._report())

        self._pulse = asyncio.get_running_loop().call_later(seconds, off)

    async def report(self) -> None:
        await self._report()

    async def telemetry(self) -> None:
        t = self.device_id
        await self.send(f"tele/{t}/STATE", json.dumps({"POWER": self._state()}))
        if self.meters_energy:  # no sensor, no SENSOR message
            await self.send(f"tele/{t}/SENSOR", json.dumps({"ENERGY": self._energy()}))
