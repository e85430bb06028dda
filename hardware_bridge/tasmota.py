"""Tasmota driver: cmnd/stat/tele topics (default FullTopic ``%prefix%/%topic%/``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from hardware_bridge.drivers import Update, load_json
from hardware_bridge.mqtt import Message

Publish = Callable[[str, str], Awaitable[None]]


def pulse_time(seconds: int) -> int:
    """Tasmota PulseTime: 1..111 in 0.1 s steps, 112..64900 = seconds + 100."""
    if seconds <= 0:
        return 0
    if seconds < 12:
        return seconds * 10
    return min(seconds, 64800) + 100


def _onoff(value: object) -> bool | None:
    if isinstance(value, str):
        v = value.strip().upper()
        if v in ("ON", "1"):
            return True
        if v in ("OFF", "0"):
            return False
    return None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _total(obj: object, *path: str) -> float | None:
    """ENERGY.Total in kWh (or ENERGY.Power in W); a meter that splits it by phase (a
    list, or an object of phases) gives the device's total as their sum."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    parts = list(obj.values()) if isinstance(obj, dict) else obj
    if isinstance(parts, list):
        numbers = [_number(p) for p in parts]
        if not numbers or None in numbers:
            return None
        return float(sum(n for n in numbers if n is not None))
    return _number(obj)


def _power(data: object) -> bool | None:
    """The first relay's state in a JSON reply (POWER, or POWER1 on a multi-relay)."""
    if not isinstance(data, dict):
        return None
    return _onoff(data.get("POWER", data.get("POWER1")))


class TasmotaDriver:
    family = "tasmota"
    filters: ClassVar[list[str]] = [
        "stat/+/POWER",
        "stat/+/RESULT",
        "stat/+/STATUS8",
        "tele/+/LWT",
        "tele/+/SENSOR",
        "tele/+/STATE",
    ]
    # Shared: SENSOR and STATE, sent every TelePeriod by every plug (the bulk); a change
    # of the relay is also sent at once on stat/…/RESULT and stat/…/POWER.
    # Direct: stat/… are replies to commands any instance may have sent, and changes,
    # few; tele/…/LWT is retained (a shared subscription gets no retained message, and
    # each instance must know at start which plugs are online) and rare.
    shared_filters: ClassVar[list[str]] = ["tele/+/SENSOR", "tele/+/STATE"]

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def parse(self, msg: Message) -> list[Update]:
        parts = msg.topic.split("/")
        if len(parts) != 3:
            return []
        prefix, dev, kind = parts
        if prefix not in ("stat", "tele"):
            return []  # another family's topic (a Shelly's <id>/events/rpc): not parsed
        r = msg.retain
        text = msg.payload.decode(errors="replace")
        if prefix == "stat" and kind == "POWER":
            # plain ON/OFF, or (SetOption4 1) the JSON reply {"POWER":"ON"} on this topic
            on = _power(load_json(msg.payload)) if text.startswith("{") else _onoff(text)
            return [] if on is None else [Update(dev, r, on=on)]
        if prefix == "tele" and kind == "LWT":
            will = text.strip().lower()  # "Online"/"Offline" unless a build renamed them
            if will in ("online", "offline"):
                return [Update(dev, r, online=will == "online")]
            return []
        data = load_json(msg.payload)
        if not isinstance(data, dict):
            return []
        if kind in ("RESULT", "STATE"):
            on = _power(data)
            return [] if on is None else [Update(dev, r, on=on)]
        if kind in ("SENSOR", "STATUS8"):
            path = ("ENERGY",) if kind == "SENSOR" else ("StatusSNS", "ENERGY")
            total = _total(data, *path, "Total")
            watts = _total(data, *path, "Power")  # per phase summed, like Total
            if total is None and watts is None:
                # the answer to Status 8 of a plug without an energy meter: StatusSNS
                # with no ENERGY (a periodic SENSOR of other sensors says nothing)
                no_meter = kind == "STATUS8" and isinstance(data.get("StatusSNS"), dict)
                return [Update(dev, r, metered=False)] if no_meter else []
            return [Update(dev, r, energy_kwh=total, power_w=watts)]
        return []

    async def set_power(self, device_id: str, on: bool, failsafe_seconds: int | None) -> None:
        if on:
            # PulseTime persists on the device: always set it (0 = no failsafe) before ON.
            await self._publish(
                f"cmnd/{device_id}/PulseTime", str(pulse_time(failsafe_seconds or 0))
            )
        await self._publish(f"cmnd/{device_id}/POWER", "ON" if on else "OFF")

    async def request_state(self, device_id: str) -> None:
        await self._publish(f"cmnd/{device_id}/POWER", "")  # empty payload = query
        await self.request_meter(device_id)

    async def request_meter(self, device_id: str) -> None:
        # Tasmota runs its commands in the order they come: after a POWER command this
        # is answered (stat/<topic>/STATUS8) right after that command's own answer
        await self._publish(f"cmnd/{device_id}/Status", "8")
