"""Telemetry of many plugs from a few publisher connections (figure 5): each plug
sends its energy reading every PERIOD seconds on its own real topic with the real
payload (Tasmota ``tele/<topic>/SENSOR``, Shelly ``<id>/events/rpc`` NotifyStatus,
whose ``params.ts`` is the send time). Runs as its own process:

    python -m bench.fleet MQTT_URL FIRST_CHARGER PLUGS PERIOD SECONDS [CONNECTIONS]

Prints one JSON line at the end: messages published and the achieved rate.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiomqtt

from bench.seed import plug_of


def message(charger_id: int, tick: int) -> tuple[str, str]:
    driver, device = plug_of(charger_id)
    if driver == "tasmota":
        payload = {
            "Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "ENERGY": {
                "TotalStartTime": "2026-01-01T00:00:00",
                "Total": round(12.5 + tick * 0.001, 3),
                "Yesterday": 0.0,
                "Today": 0.0,
                "Period": 0,
                "Power": 0,
                "ApparentPower": 0,
                "ReactivePower": 0,
                "Factor": 0.0,
                "Voltage": 229,
                "Current": 0.0,
            },
        }
        return f"tele/{device}/SENSOR", json.dumps(payload)
    note = {
        "src": device,
        "dst": f"{device}/events",
        "method": "NotifyStatus",
        "params": {
            "ts": time.time(),
            "switch:0": {"id": 0, "aenergy": {"total": round(12500.0 + tick, 3)}},
        },
    }
    return f"{device}/events/rpc", json.dumps(note)


async def publisher(
    url: str, index: int, devices: list[int], period: float, seconds: float, counts: list[int]
) -> None:
    parts = urlsplit(url)
    async with aiomqtt.Client(
        parts.hostname or "127.0.0.1", parts.port or 1883, identifier=f"bench-fleet-{index}"
    ) as client:
        started = time.monotonic()
        step = 0.02
        per_step = len(devices) * step / period
        owed = 0.0
        position = 0
        tick = 0
        while (now := time.monotonic()) - started < seconds:
            owed += per_step
            while owed >= 1:
                owed -= 1
                topic, payload = message(devices[position], tick)
                await client.publish(topic, payload, qos=0)
                counts[index] += 1
                position += 1
                if position == len(devices):
                    position, tick = 0, tick + 1
            await asyncio.sleep(
                max(0.0, started + (round((now - started) / step) + 1) * step - time.monotonic())
            )


async def main(
    url: str, first: int, plugs: int, period: float, seconds: float, connections: int
) -> None:
    chargers = list(range(first, first + plugs))
    counts = [0] * connections
    started = time.monotonic()
    await asyncio.gather(
        *(
            publisher(url, i, chargers[i::connections], period, seconds, counts)
            for i in range(connections)
        )
    )
    elapsed = time.monotonic() - started
    print(json.dumps({"published": sum(counts), "rate": sum(counts) / elapsed}), flush=True)


if __name__ == "__main__":
    url, first, plugs, period, seconds = sys.argv[1:6]
    connections = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    asyncio.run(main(url, int(first), int(plugs), float(period), float(seconds), connections))
