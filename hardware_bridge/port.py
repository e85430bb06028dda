"""The port that services use to switch power (no MQTT types leak through it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeviceRef:
    driver: Literal["tasmota", "shelly"]
    device_id: str


@dataclass(frozen=True)
class PlugState:
    on: bool | None
    online: bool | None
    energy_kwh: float | None
    at: datetime
    # the last live (not retained) message from the device, other than its last will
    heard_at: datetime | None = None
    # the power drawn at the last reading (W); None: the plug does not meter power
    power_w: float | None = None
    # when ``energy_kwh`` was read (None: never); a power command's or state()'s answer
    # carries a total read in its own round trip when the device meters
    energy_at: datetime | None = None
    # whether the device meters energy: False once it answered a meter question without a
    # meter, True once it sent a total, None while not known
    metered: bool | None = None


class BridgeError(Exception):
    """Base class of the bridge's errors."""


class BridgeUnavailable(BridgeError):
    """The broker is not reachable (the command was not sent)."""


class NotConfirmed(BridgeError):
    """The device did not confirm the command within the timeout."""


@dataclass(frozen=True)
class _Event:
    device: DeviceRef
    at: datetime = field(default_factory=utcnow)
    # seen by another bot instance (MQTT_SHARE_GROUP) and relayed here: that instance
    # raised the same event for its own services, so domain effects, which are the same
    # on every instance, are left to it; only in-process waiters (pairing) need it here
    relayed: bool = field(default=False, kw_only=True)


@dataclass(frozen=True)
class DeviceOnline(_Event):
    pass


@dataclass(frozen=True)
class DeviceWentOffline(_Event):
    """The device's last will says it is offline (the broker lost it)."""


class DeviceOfflineError(BridgeError):
    """A command or a question to a device known to be offline."""

    def __init__(self, device: DeviceRef) -> None:
        super().__init__(f"device {device.driver}:{device.device_id} is offline")
        self.device = device


@dataclass(frozen=True, kw_only=True)
class PowerChanged(_Event):
    on: bool
    # learned by a re-read after a (re)connection or from a retained snapshot, not seen
    # as it happened: the change may be older than ``at``
    discovered: bool = False
    # the device's previous live message (None: not heard since this process started)
    last_heard_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class EnergyReading(_Event):
    total_kwh: float


@dataclass(frozen=True, kw_only=True)
class PowerReading(_Event):
    """The power the device draws now (W), from a live message."""

    watts: float


DeviceEvent = DeviceOnline | DeviceWentOffline | PowerChanged | EnergyReading | PowerReading
EventCallback = Callable[[DeviceEvent], Awaitable[None] | None]


class PowerSwitch(Protocol):
    """power_on, power_off and state return the state after the device's answer; when
    the device meters, its energy total is read in that same round trip (``energy_at``),
    so a stop needs no second question for its final reading."""

    async def power_on(
        self,
        device: DeviceRef,
        *,
        failsafe_seconds: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> PlugState: ...

    async def power_off(self, device: DeviceRef, timeout: float = 10.0) -> PlugState: ...  # noqa: ASYNC109

    async def state(self, device: DeviceRef, timeout: float = 5.0) -> PlugState: ...  # noqa: ASYNC109

    def known(self, device: DeviceRef) -> PlugState:
        """What the bridge last heard from the device (no round trip)."""
        ...

    def on_event(self, callback: EventCallback) -> None: ...


# -- per-plug broker accounts (issue #15) -------------------------------------------


class AccountsUnavailable(BridgeError):
    """The broker's account administration did not answer or refused."""


class BrokerAccounts(Protocol):
    """Gives each plug its own broker login, confined to its own topics."""

    async def plug_account(self, driver: Literal["tasmota", "shelly"], plug_id: str) -> str:
        """Create (or reset) the account named ``plug_id``; returns its new password."""
        ...
