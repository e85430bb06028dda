"""Pairing a smart plug with a charger: proving that the bot controls it.

A plug id typed in the wizard proves nothing: it may be mistyped, offline, or
someone else's. Pairing asks the plug for its state (it must be online on the
broker and answer), then switches it to the other state for a few seconds and
back, each time waiting for the device's own state message (the bridge's
confirmations are the device's reports, never our command echoed). A plug that
cannot be switched (something is charging from it, say) can be proven by its
button instead: the merchant presses it and the bot waits for the change.

A charger is bookable only with a paired plug (``Charger.paired_at``). The
device work goes through the PowerSwitch port; no MQTT here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, cast

from hardware_bridge.port import (
    AccountsUnavailable,
    BridgeError,
    BridgeUnavailable,
    BrokerAccounts,
    DeviceEvent,
    DeviceOfflineError,
    DeviceRef,
    NotConfirmed,
    PowerChanged,
    PowerSwitch,
)
from services.clock import utcnow
from services.errors import InvalidInput
from services.listing_draft import PLUG_DRIVERS


class PairOutcome(StrEnum):
    PAIRED = "paired"
    OFFLINE = "offline"  # its last will says offline, or it never answered
    NOT_SWITCHED = "not_switched"  # online, but did not confirm the switching
    NO_PRESS = "no_press"  # no button press heard in time
    BROKER_DOWN = "broker_down"  # the bot could not reach the broker


@dataclass(frozen=True)
class PairResult:
    outcome: PairOutcome
    at: datetime | None = None  # when it was proven (PAIRED)

    @property
    def paired(self) -> bool:
        return self.outcome is PairOutcome.PAIRED


class AccountStatus(StrEnum):
    CREATED = "created"  # the bot made the plug's account: the password is shown once
    BY_ADMIN = "by_admin"  # no account administration set up: the broker's admin adds it
    FAILED = "failed"  # set up, but it did not answer


@dataclass(frozen=True)
class PlugSetup:
    """What a merchant types into the plug's MQTT settings."""

    driver: str
    topic: str  # the Tasmota topic or the Shelly MQTT prefix (= the plug id)
    host: str
    port: int
    user: str  # the plug's account on the broker: named as the plug (deploy/mosquitto.acl)
    password: str | None
    status: AccountStatus


def device_of(driver: str, plug_id: str) -> DeviceRef:
    if driver not in PLUG_DRIVERS or not plug_id:
        raise InvalidInput("pairing.err_plug")
    return DeviceRef(cast(Literal["tasmota", "shelly"], driver), plug_id)


class Pairing:
    """Proves control of a plug over the PowerSwitch port (one per process)."""

    def __init__(
        self,
        switch: PowerSwitch,
        *,
        answer_timeout: float = 5.0,
        confirm_timeout: float = 10.0,
        pulse_seconds: float = 3.0,
        button_timeout: float = 60.0,
        accounts: BrokerAccounts | None = None,
        plug_host: str = "127.0.0.1",
        plug_port: int = 8883,
    ) -> None:
        self.switch = switch
        # None: no dynamic security on the broker (MQTT_DYNSEC off)
        self.accounts = accounts
        # where the plugs connect (the broker's public address, TLS port)
        self.plug_host, self.plug_port = plug_host, plug_port
        self.answer_timeout = answer_timeout
        self.confirm_timeout = confirm_timeout
        self.pulse_seconds = pulse_seconds
        self.button_timeout = button_timeout
        self._presses: dict[DeviceRef, list[asyncio.Future[None]]] = {}
        switch.on_event(self._on_event)

    def _on_event(self, event: DeviceEvent) -> None:
        # a change seen as it happened (not one re-read after a reconnection)
        if isinstance(event, PowerChanged) and not event.discovered:
            for waiter in self._presses.get(event.device, []):
                if not waiter.done():
                    waiter.set_result(None)

    async def prove_by_switching(self, driver: str, plug_id: str) -> PairResult:
        """Online? Then to the other state for ``pulse_seconds`` and back, each step
        confirmed by the device's own report."""
        device = device_of(driver, plug_id)
        try:
            state = await self.switch.state(device, timeout=self.answer_timeout)
        except BridgeUnavailable:
            return PairResult(PairOutcome.BROKER_DOWN)
        except (DeviceOfflineError, NotConfirmed):
            return PairResult(PairOutcome.OFFLINE)
        was_on = bool(state.on)
        try:
            await self._switch(device, not was_on)
            await asyncio.sleep(self.pulse_seconds)  # long enough to see or hear the relay
            await self._switch(device, was_on)
        except BridgeUnavailable:
            return PairResult(PairOutcome.BROKER_DOWN)
        except DeviceOfflineError:
            return PairResult(PairOutcome.OFFLINE)
        except BridgeError:
            # back to where it was, if it hears us at all
            with contextlib.suppress(BridgeError):
                await self._switch(device, was_on)
            return PairResult(PairOutcome.NOT_SWITCHED)
        return PairResult(PairOutcome.PAIRED, utcnow())

    async def _switch(self, device: DeviceRef, on: bool) -> None:
        if on:
            # the device's own failsafe switches it off again if we cannot
            failsafe = max(5, int(self.pulse_seconds * 3))
            await self.switch.power_on(
                device, failsafe_seconds=failsafe, timeout=self.confirm_timeout
            )
        else:
            await self.switch.power_off(device, timeout=self.confirm_timeout)

    async def prove_by_button(self, driver: str, plug_id: str) -> PairResult:
        """Wait for the merchant to press the plug's button: a change of state that
        the device reports live (a retained snapshot does not count)."""
        device = device_of(driver, plug_id)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._presses.setdefault(device, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, self.button_timeout)
        except TimeoutError:
            if self.switch.known(device).online is False:
                return PairResult(PairOutcome.OFFLINE)
            return PairResult(PairOutcome.NO_PRESS)
        finally:
            waiters = self._presses.get(device, [])
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                self._presses.pop(device, None)
        return PairResult(PairOutcome.PAIRED, utcnow())

    async def setup(self, driver: str, plug_id: str) -> PlugSetup:
        """The plug's settings, with a fresh account when the bot can make one (each
        call resets its password: it is shown once, never stored)."""
        device = device_of(driver, plug_id)
        password, status = None, AccountStatus.BY_ADMIN
        if self.accounts is not None:
            try:
                password = await self.accounts.plug_account(device.driver, plug_id)
                status = AccountStatus.CREATED
            except AccountsUnavailable:
                status = AccountStatus.FAILED
        return PlugSetup(driver, plug_id, self.plug_host, self.plug_port, plug_id, password, status)
