"""What drivers share: the update they extract from a message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from hardware_bridge.mqtt import Message


@dataclass(frozen=True)
class Update:
    device_id: str
    retained: bool
    on: bool | None = None
    online: bool | None = None
    energy_kwh: float | None = None
    # the power drawn now (W): Tasmota ENERGY.Power, Shelly apower
    power_w: float | None = None
    # False: a full answer about the meter that has none (Tasmota's Status 8 reply without
    # ENERGY, a Shelly switch status without aenergy): the device does not meter energy
    metered: bool | None = None


class Driver(Protocol):
    @property
    def family(self) -> str: ...

    @property
    def filters(self) -> list[str]:
        """The topics (MQTT wildcards) this family's plugs publish on."""
        ...

    @property
    def shared_filters(self) -> list[str]:
        """Those of ``filters`` that bot instances may share (MQTT_SHARE_GROUP): the
        high-volume telemetry. The rest each instance gets whole: replies to commands
        (any instance may have sent one) and availability (retained, which a shared
        subscription is never sent, and each instance must know at start)."""
        ...

    def parse(self, msg: Message) -> list[Update]: ...

    async def set_power(self, device_id: str, on: bool, failsafe_seconds: int | None) -> None: ...

    async def request_state(self, device_id: str) -> None: ...

    async def request_meter(self, device_id: str) -> None:
        """Ask for the energy total alone; sent right after a power command (no wait in
        between), the device answers it once the command is applied."""
        ...


def load_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
