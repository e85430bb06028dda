"""One aiomqtt client per process, with reconnection, resubscription and hooks."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.client import topic_matches_sub

from hardware_bridge.port import BridgeUnavailable

log = logging.getLogger(__name__)

# a command and its reply are small packets sent back to back: without TCP_NODELAY,
# Nagle's algorithm holds the second until the peer's delayed ACK (~40 ms on Linux)
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

__all__ = ["BridgeUnavailable", "Message", "MqttClient"]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool  # a retained message is a state snapshot, not a fresh event
    # it came through a shared subscription ($share/<group>/…): no other bot instance
    # got it (a PUBLISH carries the topic without the $share prefix, so this is known by
    # matching the topic against the filters subscribed shared)
    shared: bool = False


MessageHandler = Callable[[Message], Awaitable[None] | None]
ConnectHook = Callable[[], Awaitable[None]]


STOP_WAIT_S = 15.0  # longer than aiomqtt's own disconnect timeout (10 s)


class MqttClient:
    def __init__(
        self,
        url: str,
        instance: str,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        publish_wait: float = 2.0,
        share_group: str | None = None,
    ) -> None:
        if share_group is not None and (not share_group or any(c in share_group for c in "/+#")):
            raise ValueError(f"not usable as an MQTT share group: {share_group!r}")
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.username = username or (unquote(parts.username) if parts.username else None)
        self.password = password or (unquote(parts.password) if parts.password else None)
        self.instance = instance
        self.client_id = f"{instance}-{secrets.token_hex(4)}"
        self.keepalive = keepalive
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.publish_wait = publish_wait
        self.reconnects = 0  # successful connections after the first one
        self.connections = 0
        # the instances sharing the high-volume telemetry: each message on a filter
        # subscribed ``shared`` goes to one of them (None: every instance gets all)
        self.share_group = share_group
        self._filters: list[str] = []  # as subscribed (with the $share/ prefix)
        self._shared: list[str] = []  # the filters subscribed shared (without it)
        self._handlers: list[MessageHandler] = []
        self._hooks: list[ConnectHook] = []
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._bg: set[asyncio.Task[object]] = set()

    # -- registration ------------------------------------------------------------------
    def subscribe(self, topic_filter: str, *, shared: bool = False) -> None:
        """``shared``: with a share group, a shared subscription (MQTT 5, which
        mosquitto 2 also grants MQTT 3.1.1 clients): each message goes to one member of
        the group. Retained messages are not sent to shared subscriptions."""
        if shared and self.share_group is not None:
            self._shared.append(topic_filter)
            topic_filter = f"$share/{self.share_group}/{topic_filter}"
        self._filters.append(topic_filter)
        if self._client is not None and self._connected.is_set():
            self._spawn(self._client.subscribe(topic_filter, qos=1))

    def add_handler(self, handler: MessageHandler) -> None:
        self._handlers.append(handler)

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """``hook`` runs (as a task) after each connection, once subscriptions are made."""
        self._hooks.append(hook)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            # aiomqtt's exit waits up to its timeout (10 s) for the broker to confirm
            # the DISCONNECT, and when that times out it raises MqttError in place of
            # the cancellation: the loop then ends on the flag, not on the cancel
            await asyncio.wait({task}, timeout=STOP_WAIT_S)
            if not task.done():
                log.warning("mqtt client %s did not stop in %ss", self.client_id, STOP_WAIT_S)
            elif not task.cancelled() and task.exception() is not None:
                log.warning("mqtt client %s stopped with %r", self.client_id, task.exception())
        for t in list(self._bg):
            t.cancel()
        self._connected.clear()
        self._client = None

    async def _run(self) -> None:
        delay = self.backoff_initial
        while not self._stopping:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=self.client_id,
                username=self.username,
                password=self.password,
                keepalive=self.keepalive,
                socket_options=NO_DELAY,
            )
            try:
                async with client:
                    for f in self._filters:
                        await client.subscribe(f, qos=1)
                    self._client = client
                    self._connected.set()
                    if self.connections:
                        self.reconnects += 1
                    self.connections += 1
                    delay = self.backoff_initial
                    log.info("mqtt connected as %s (%d)", self.client_id, self.connections)
                    for hook in self._hooks:
                        self._spawn(hook())
                    async for m in client.messages:
                        topic = str(m.topic)
                        shared = any(topic_matches_sub(f, topic) for f in self._shared)
                        msg = Message(topic, _as_bytes(m.payload), bool(m.retain), shared)
                        for handler in self._handlers:
                            try:
                                result = handler(msg)
                                if result is not None:
                                    await result
                            except Exception:
                                log.exception("mqtt handler failed on %s", msg.topic)
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    return
                log.warning("mqtt connection lost (%s); retrying in %.1fs", exc, delay)
            finally:
                self._connected.clear()
                self._client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def _spawn(self, coro: Awaitable[object]) -> None:
        async def wrap() -> None:
            try:
                await coro
            except Exception:
                log.exception("mqtt background task failed")

        t = asyncio.create_task(wrap())
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    # -- publishing --------------------------------------------------------------------
    async def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> None:
        """Publish a command (never retained); ``BridgeUnavailable`` while disconnected."""
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), self.publish_wait)
            except TimeoutError:
                raise BridgeUnavailable(f"MQTT broker unreachable; {topic} not sent") from None
        client = self._client
        if client is None:
            raise BridgeUnavailable(f"MQTT broker unreachable; {topic} not sent")
        try:
            await client.publish(topic, payload, qos=qos, retain=False)
        except aiomqtt.MqttError as exc:
            raise BridgeUnavailable(f"MQTT publish of {topic} failed: {exc}") from exc


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
