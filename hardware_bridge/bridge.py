"""The Bridge: a PowerSwitch over one MQTT client and the device drivers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hardware_bridge.drivers import Driver, Update, load_json
from hardware_bridge.mqtt import Message, MqttClient
from hardware_bridge.port import (
    BridgeUnavailable,
    DeviceEvent,
    DeviceOfflineError,
    DeviceOnline,
    DeviceRef,
    DeviceWentOffline,
    EnergyReading,
    EventCallback,
    NotConfirmed,
    PlugState,
    PowerChanged,
    PowerReading,
    utcnow,
)
from hardware_bridge.shelly import ShellyDriver
from hardware_bridge.tasmota import TasmotaDriver

log = logging.getLogger(__name__)

# the publishes of the command being sent (Bridge._publish)
_SENDING: contextvars.ContextVar[list[asyncio.Future[None]] | None] = contextvars.ContextVar(
    "bridge_sending", default=None
)

# how long a command or state() waits, after the power state, for the answer to the meter
# question sent with it; that answer comes in the same round trip (one that says "no
# meter" too), so this bounds only a device that does not answer it at all
ENERGY_WAIT = 1.0

# With MQTT_SHARE_GROUP the instances share the telemetry: a plug's report of a change
# (on/off, online/offline) may reach any one of them, while the instance that sent the
# command waits for it. The receiving instance relays the change to the others on
# chargeshare-relay/<group>/<its client id>: a plain MQTT topic, not shared, that only
# the bots' account may write (deploy/mosquitto.acl; the plug id "chargeshare-relay" is
# refused). Over the broker the bridge already uses it costs one hop (well under a
# millisecond, no poll), needs no other service (PostgreSQL LISTEN/NOTIFY is not there
# on SQLite, Redis is optional) and keeps the bridge free of our other packages. A relay
# lost (a broker outage) only costs the fallback question to the plug.
RELAY_PREFIX = "chargeshare-relay"


@dataclass
class _Known:
    on: bool | None = None
    online: bool | None = None
    energy_kwh: float | None = None
    power_w: float | None = None
    at: object = None
    heard_at: datetime | None = None
    # when the energy total was received; whether the device meters (None: not known)
    energy_at: datetime | None = None
    metered: bool | None = None
    waiters: list[tuple[Callable[[Update], bool], asyncio.Future[None]]] = field(
        default_factory=list
    )

    def snapshot(self) -> PlugState:
        return PlugState(
            self.on,
            self.online,
            self.energy_kwh,
            utcnow(),
            self.heard_at,
            self.power_w,
            energy_at=self.energy_at,
            metered=self.metered,
        )


class Bridge:
    def __init__(self, client: MqttClient) -> None:
        self.client = client
        # Shelly replies to chargeshare/<device id>/<client id>/rpc: one topic per plug
        # and instance, which the broker's ACL lets only that plug write
        # (deploy/mosquitto.acl)
        self.drivers: dict[str, Driver] = {
            "tasmota": TasmotaDriver(self._publish),
            "shelly": ShellyDriver(self._publish, client.client_id),
        }
        self._known: dict[DeviceRef, _Known] = {}
        # since when the current broker connection is up: a device not heard since
        # then may have changed while nobody listened
        self._connected_since = utcnow()
        self._callbacks: list[EventCallback] = []
        self.reread_count = 0
        # changes relayed to and from the other instances of the share group
        self.relayed_out = 0
        self.relayed_in = 0
        group = client.share_group
        self._relay_topic = f"{RELAY_PREFIX}/{group}" if group else None
        self._relaying: set[asyncio.Task[None]] = set()
        for driver in self.drivers.values():
            for f in driver.filters:
                client.subscribe(f, shared=f in driver.shared_filters)
        if self._relay_topic is not None:
            client.subscribe(f"{self._relay_topic}/+")
        client.add_handler(self._on_message)
        client.add_connect_hook(self._reread)

    async def start(self, wait: float = 5.0) -> None:
        await self.client.start()
        with contextlib.suppress(TimeoutError):
            await self.client.wait_connected(wait)

    async def stop(self) -> None:
        for task in list(self._relaying):
            task.cancel()
        await self.client.stop()

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    def known(self, device: DeviceRef) -> PlugState:
        return self._get(device).snapshot()

    def _get(self, device: DeviceRef) -> _Known:
        return self._known.setdefault(device, _Known())

    # -- incoming ----------------------------------------------------------------------
    async def _on_message(self, msg: Message) -> None:
        if msg.topic.startswith(f"{RELAY_PREFIX}/"):
            await self._on_relay(msg)
            return
        for family, driver in self.drivers.items():
            for upd in driver.parse(msg):
                device = DeviceRef(family, upd.device_id)  # type: ignore[arg-type]
                await self._apply(device, upd, shared=msg.shared)

    async def _apply(
        self,
        device: DeviceRef,
        upd: Update,
        *,
        shared: bool = False,
        relayed: bool = False,
        relayed_discovered: bool = False,
    ) -> None:
        """``shared``: no other instance got this message (it relays a change);
        ``relayed``: another instance got it (its events say so), and
        ``relayed_discovered`` is whether that one saw the change happen."""
        k = self._get(device)
        events: list[DeviceEvent] = []
        now = utcnow()
        changed = (upd.on is not None and upd.on != k.on) or (
            upd.online is not None and upd.online != k.online
        )
        # Retained messages are snapshots: they update the state, and only raise an event
        # when they contradict what we knew (a change we missed while disconnected).
        if upd.online is not None:
            if upd.online != k.online and (not upd.retained or k.online is not None):
                events.append(
                    DeviceOnline(device, now, relayed=relayed)
                    if upd.online
                    else DeviceWentOffline(device, now, relayed=relayed)
                )
            k.online = upd.online
        discovered = False
        if upd.on is not None:
            if upd.on != k.on and (not upd.retained or k.on is not None):
                # a relayed change: whether it was seen as it happened is the hearer's
                # to say (this instance may never have heard the plug itself)
                discovered = (
                    relayed_discovered
                    if relayed
                    else (upd.retained or k.heard_at is None or k.heard_at < self._connected_since)
                )
                events.append(
                    PowerChanged(
                        device,
                        now,
                        on=upd.on,
                        discovered=discovered,
                        last_heard_at=k.heard_at,
                        relayed=relayed,
                    )
                )
            k.on = upd.on
            if not upd.retained:
                k.online = True if k.online is None else k.online
        if upd.metered is False:
            k.metered = False
        if upd.energy_kwh is not None:
            k.energy_kwh = upd.energy_kwh
            k.energy_at, k.metered = now, True
            if not upd.retained:
                events.append(EnergyReading(device, now, total_kwh=upd.energy_kwh))
        if upd.power_w is not None:
            k.power_w = upd.power_w
            if not upd.retained:
                events.append(PowerReading(device, now, watts=upd.power_w))
        k.at = now
        if not upd.retained and upd.online is not False:
            k.heard_at = now
        for pred, fut in list(k.waiters):
            if not fut.done() and pred(upd):
                fut.set_result(None)
        if shared and changed and not upd.retained and self._relay_topic is not None:
            self._relay(device, upd, discovered)
        for ev in events:
            for cb in self._callbacks:
                try:
                    res = cb(ev)
                    if inspect.isawaitable(res):
                        await res
                except Exception:
                    log.exception("event callback failed for %r", ev)

    # -- the relay between instances (MQTT_SHARE_GROUP) ------------------------------------
    def _relay(self, device: DeviceRef, upd: Update, discovered: bool) -> None:
        """Tell the other instances a change that only this one heard: only changes
        (not every reading), so the relay stays small beside the telemetry."""
        body = json.dumps(
            {
                "driver": device.driver,
                "device": device.device_id,
                "on": upd.on,
                "online": upd.online,
                "discovered": discovered,
            }
        )
        self.relayed_out += 1
        # not awaited: the message loop goes on while the broker takes it
        task = asyncio.create_task(self._publish_relay(body))
        self._relaying.add(task)
        task.add_done_callback(self._relaying.discard)

    async def _publish_relay(self, body: str) -> None:
        try:
            await self.client.publish(f"{self._relay_topic}/{self.client.client_id}", body)
        except BridgeUnavailable as exc:  # the others fall back to asking the plug
            log.warning("relay not sent: %s", exc)

    async def _on_relay(self, msg: Message) -> None:
        """A change another instance heard: applied to the known state and the waiters
        here, its events marked relayed, and not relayed again."""
        group, _, sender = msg.topic[len(RELAY_PREFIX) + 1 :].partition("/")
        if (
            self._relay_topic != f"{RELAY_PREFIX}/{group}"
            or not sender
            or "/" in sender
            or sender == self.client.client_id  # our own, back from the broker
            or msg.retain
        ):
            return
        data = load_json(msg.payload)
        if not isinstance(data, dict):
            return
        family, dev = data.get("driver"), data.get("device")
        on, online = data.get("on"), data.get("online")
        discovered = data.get("discovered", False)
        if (
            not isinstance(family, str)
            or family not in self.drivers
            or not isinstance(dev, str)
            or not dev
            or any(c in dev for c in "/+#")
            or not isinstance(on, bool | None)
            or not isinstance(online, bool | None)
            or not isinstance(discovered, bool)
            or (on is None and online is None)
        ):
            log.warning("relay message not understood: %r", msg.payload[:200])
            return
        self.relayed_in += 1
        device = DeviceRef(family, dev)  # type: ignore[arg-type]
        upd = Update(dev, False, on=on, online=online)
        await self._apply(device, upd, relayed=True, relayed_discovered=discovered)

    async def _reread(self) -> None:
        """After each (re)connection: ask every known device for a fresh state."""
        self._connected_since = utcnow()
        self.reread_count += 1
        for device in list(self._known):
            with contextlib.suppress(Exception):
                await self.drivers[device.driver].request_state(device.device_id)

    # -- commands ----------------------------------------------------------------------
    async def _publish(self, topic: str, payload: str) -> None:
        """The drivers' publish. Inside a command (``_sending``) each message is handed
        to the client at once, in order, and the broker's acknowledgements are awaited
        together afterwards: a Tasmota's PulseTime, POWER and Status 8 leave back to
        back instead of one broker round trip apart."""
        sending = _SENDING.get()
        if sending is None:
            await self.client.publish(topic, payload)
        else:
            # tasks run in the order they are made; each hands its message to the
            # socket before its first wait
            sending.append(asyncio.ensure_future(self.client.publish(topic, payload)))

    async def _send_pipelined(self, send: Callable[[], object]) -> None:
        """Run ``send`` (a driver's command: one or more publishes) with its messages
        pipelined; raises what a publish raised (BridgeUnavailable), once all are sent."""
        sending: list[asyncio.Future[None]] = []
        token = _SENDING.set(sending)
        try:
            await send()  # type: ignore[misc]
        finally:
            _SENDING.reset(token)
        failed = [
            r for r in await asyncio.gather(*sending, return_exceptions=True) if r is not None
        ]
        if failed:
            raise failed[0]

    async def _command_and_wait(
        self,
        device: DeviceRef,
        send: Callable[[], object],
        pred: Callable[[Update], bool],
        timeout: float,  # noqa: ASYNC109
        what: str,
        *,
        meter: bool = False,
    ) -> PlugState:
        """Send, and wait for the device's confirmation (``pred``). With ``meter`` (what
        is sent asks the meter too, right behind the command), the first answer about
        the meter at or after the confirmation is waited for as well: the same round
        trip gives the confirmation and a fresh total. A device known not to meter is
        not waited for; one that leaves the question unanswered, at most
        ``ENERGY_WAIT`` past its confirmation."""
        k = self._get(device)
        if k.online is False:
            raise DeviceOfflineError(device)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (lambda u: not u.retained and pred(u), fut)
        # checked after ``entry`` on each message: a Shelly's GetStatus reply (or a
        # NotifyStatus) that confirms may carry the total itself
        read: asyncio.Future[None] = loop.create_future()
        reading = (
            lambda u: (
                fut.done() and not u.retained and (u.energy_kwh is not None or u.metered is False)
            ),
            read,
        )
        k.waiters.append(entry)
        if meter:
            k.waiters.append(reading)
        driver = self.drivers[device.driver]
        try:
            try:
                async with asyncio.timeout(timeout):
                    await self._send_pipelined(send)
                    done, _ = await asyncio.wait({fut}, timeout=min(1.0, timeout / 3))
                    if not done:
                        await driver.request_state(device.device_id)
                    await fut
            except TimeoutError:
                if self.known(device).online is False:  # its last will came meanwhile
                    raise DeviceOfflineError(device) from None
                raise NotConfirmed(
                    f"{device.driver}:{device.device_id} did not confirm {what}"
                ) from None
            if meter and k.metered is not False and not read.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(read), ENERGY_WAIT)
        finally:
            for waiter in (entry, reading):
                with contextlib.suppress(ValueError):
                    k.waiters.remove(waiter)
        return k.snapshot()

    @staticmethod
    async def _switch(driver: Driver, device: DeviceRef, on: bool, failsafe: int | None) -> None:
        # the meter question right behind the command, pipelined: a device answers its
        # commands in order, so its answer shows the total once the relay switched
        await driver.set_power(device.device_id, on, failsafe)
        await driver.request_meter(device.device_id)

    async def power_on(
        self,
        device: DeviceRef,
        *,
        failsafe_seconds: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> PlugState:
        """Switch on; the state returned carries the meter's total read just after the
        switch (the session's start reading) when the device meters."""
        driver = self.drivers[device.driver]
        return await self._command_and_wait(
            device,
            lambda: self._switch(driver, device, True, failsafe_seconds),
            lambda u: u.on is True,
            timeout,
            "power on",
            meter=True,
        )

    async def power_off(self, device: DeviceRef, timeout: float = 10.0) -> PlugState:  # noqa: ASYNC109
        """Switch off; the state returned carries the meter's final total, read in the
        same round trip, when the device meters."""
        driver = self.drivers[device.driver]
        return await self._command_and_wait(
            device,
            lambda: self._switch(driver, device, False, None),
            lambda u: u.on is False,
            timeout,
            "power off",
            meter=True,
        )

    async def state(self, device: DeviceRef, timeout: float = 5.0) -> PlugState:  # noqa: ASYNC109
        """Ask the device for its relay and its meter (one question; Tasmota answers
        the meter separately, right after the relay)."""
        driver = self.drivers[device.driver]
        return await self._command_and_wait(
            device,
            lambda: driver.request_state(device.device_id),
            lambda u: u.on is not None,
            timeout,
            "state",
            meter=True,
        )
