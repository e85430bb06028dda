"""A simulated plug: its own aiomqtt client (with a last will), a relay and a meter."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from hardware_bridge.mqtt import NO_DELAY


class SimPlug:
    will_topic = ""
    will_payload = ""
    online_payload = ""

    def __init__(
        self, url: str, device_id: str, *, watts: float = 2000.0, tele_period: float = 0.3
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        # a broker with per-plug accounts (deploy/mosquitto.acl): mqtt://user:pass@host
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.device_id = device_id
        self.watts = watts
        self.tele_period = tele_period
        self.never_confirm = False
        # connected (its will says online) but hung: answers nothing, reports nothing
        self.silent = False
        self.on = False
        self._wh = 0.0
        self._since = time.monotonic()
        self.commands: list[tuple[str, bytes, bool]] = []  # topic, payload, retain
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._dropped = False
        self.connections = 0
        self.background: set[asyncio.Future[None]] = set()
        # -- a battery that "fills up" (issue #15) --
        # set: this long after each switch-on the load falls to ``trickle_watts`` (a full
        # battery), and is back to ``watts`` at the next switch-on
        self.fill_seconds: float | None = None
        self.trickle_watts = 2.0
        # False: a plug with an energy meter that reports no power reading (so "until
        # full" is not offered on its charger)
        self.meters_power = True
        # False: a plug with no energy meter at all (a Sonoff Basic, a Shelly Plus 1):
        # its status has no energy total, its Status 8 answer no ENERGY
        self.meters_energy = True
        self._load_watts = watts
        self._on_since = 0.0

    @property
    def online(self) -> bool:
        """Connected to the broker (its last will says Online)."""
        return self._ready.is_set()

    # -- meter -------------------------------------------------------------------------
    def energy_wh(self) -> float:
        now = time.monotonic()
        if self.on:
            self._wh += self.watts * (now - self._since) / 3600.0
        self._since = now
        return self._wh

    def set_relay(self, on: bool) -> None:
        self.energy_wh()
        if on and not self.on and self.fill_seconds is not None:
            self._on_since = time.monotonic()
            self.watts = self._load_watts  # a new battery to charge
        self.on = on

    def _fill(self) -> None:
        """A filling battery: past ``fill_seconds`` on, it draws only a trickle."""
        if (
            self.fill_seconds is not None
            and self.on
            and time.monotonic() - self._on_since >= self.fill_seconds
            and self.watts != self.trickle_watts
        ):
            self.energy_wh()
            self.watts = self.trickle_watts

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._dropped = False
        self._ready.clear()
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _run(self) -> None:
        while not self._dropped:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=f"sim-{self.device_id}",
                username=self.username,
                password=self.password,
                keepalive=5,
                will=aiomqtt.Will(self.will_topic, self.will_payload, qos=1, retain=True),
                socket_options=NO_DELAY,
            )
            try:
                async with client:
                    self._client = client
                    await client.subscribe(self.command_filter(), qos=1)
                    await client.publish(self.will_topic, self.online_payload, qos=1, retain=True)
                    self.connections += 1
                    self._ready.set()
                    tele = asyncio.create_task(self._telemetry())
                    try:
                        async for m in client.messages:
                            payload = m.payload if isinstance(m.payload, bytes) else b""
                            self.commands.append((str(m.topic), payload, bool(m.retain)))
                            if not self.silent:
                                await self.handle(str(m.topic), payload)
                    finally:
                        tele.cancel()
            except aiomqtt.MqttError:
                pass
            self._ready.clear()
            self._client = None
            await asyncio.sleep(0.2)

    async def _telemetry(self) -> None:
        while True:
            await asyncio.sleep(self.tele_period)
            if self.silent:
                continue
            self._fill()
            with contextlib.suppress(aiomqtt.MqttError):
                await self.telemetry()

    async def drop_off(self) -> None:
        """Vanish without DISCONNECT (power cut): the broker publishes the last will."""
        self._dropped = True
        client = self._client
        if client is not None:
            sock = client._client.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await self._cancel()

    async def stop(self) -> None:
        self._dropped = True
        await self._cancel()

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # bounded: aiomqtt's exit alone may wait 10 s for the broker's goodbye
            await asyncio.wait({task}, timeout=15)
            if task.done() and not task.cancelled():
                with contextlib.suppress(aiomqtt.MqttError):
                    task.result()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        fut = asyncio.ensure_future(coro)
        self.background.add(fut)
        fut.add_done_callback(self.background.discard)

    async def send(self, topic: str, payload: str, retain: bool = False) -> None:
        if self._client is not None:
            await self._client.publish(topic, payload, qos=1, retain=retain)

    async def press_button(self) -> None:
        """Someone presses the plug's own button: the relay toggles and the plug
        reports it, as it reports any change (pairing by button, issue #15)."""
        self.set_relay(not self.on)
        await self.report()

    # -- protocol (subclasses) ---------------------------------------------------------
    def command_filter(self) -> str:
        raise NotImplementedError

    async def report(self) -> None:
        """Publish the relay's state as the device does after a change."""
        raise NotImplementedError

    async def handle(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError

    async def telemetry(self) -> None:
        raise NotImplementedError
