"""The sandbox's MQTT broker: mosquitto when the machine has it, else amqtt in-process.

Either listens on 127.0.0.1 on a free port; ``url`` is what MQTT_URL gets. Set
``SANDBOX_BROKER=amqtt`` (or ``mosquitto``) to choose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")

# MQTT 3.1.1 CONNECT (clean session, keepalive 60, empty client id) and DISCONNECT.
_MQTT_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
_MQTT_DISCONNECT = b"\xe0\x00"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in MOSQUITTO_PATHS if os.access(path, os.X_OK)), None)


async def mqtt_answers(host: str, port: int) -> bool:
    """Whether an MQTT broker accepts a connection there (CONNECT → CONNACK 0)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(_MQTT_CONNECT)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(4), 1.0)
        writer.write(_MQTT_DISCONNECT)
        return reply[:1] == b"\x20" and reply[3:4] == b"\x00"
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class Broker:
    """A running broker; ``kind`` is "mosquitto" or "amqtt"."""

    kind = ""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        raise NotImplementedError


class MosquittoBroker(Broker):
    kind = "mosquitto"

    def __init__(self, binary: str, host: str, port: int) -> None:
        super().__init__(host, port)
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="chargeshare-mosquitto-"))
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            "# written by the ChargeShare sandbox\n"
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\npersistence false\nlog_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        with self.log_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary,
                "-c",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal is ours to handle
            )
        deadline = time.monotonic() + timeout
        while not await mqtt_answers(self.host, self.port):
            if self._proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                tail = self.log_path.read_text(errors="replace")[-800:]
                raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{tail}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


class AmqttBroker(Broker):
    """amqtt's broker, in this process and event loop."""

    kind = "amqtt"

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._broker: object | None = None

    async def start(self) -> None:
        from amqtt.broker import Broker as _Amqtt

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        broker = _Amqtt(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        self._broker = broker

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.shutdown()  # type: ignore[attr-defined]


async def start_broker(prefer: str | None = None, host: str = "127.0.0.1") -> Broker:
    """Start mosquitto if it is installed (or ``prefer`` says so), else amqtt."""
    prefer = (prefer or os.environ.get("SANDBOX_BROKER") or "").strip().lower()
    if prefer not in ("", "mosquitto", "amqtt"):
        raise SystemExit(f"SANDBOX_BROKER must be mosquitto or amqtt, not {prefer!r}")
    binary = find_mosquitto() if prefer != "amqtt" else None
    if prefer == "mosquitto" and binary is None:
        raise SystemExit("SANDBOX_BROKER=mosquitto, but mosquitto is not installed")
    broker: MosquittoBroker | AmqttBroker
    if binary is not None:
        broker = MosquittoBroker(binary, host, free_port(host))
    else:
        broker = AmqttBroker(host, free_port(host))
    await broker.start()
    log.info("MQTT broker: %s on %s", broker.kind, broker.url)
    return broker
