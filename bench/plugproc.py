"""The simulated plugs of figure 3's lanes, in a process of their own, so that the
bench's own event loop (its Bot API server and its load) cannot delay them:

    python -m bench.plugproc MQTT_URL CHARGER_ID [CHARGER_ID …]

Each plug is the sandbox's simulated Tasmota or Shelly (``bench.seed.plug_of`` says
which). Prints ``ready`` once all are connected, then one line per power command a plug
receives: ``on|off <plug id> <time.monotonic()>`` (the same clock in every
process of the machine). Ends on SIGINT or when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from bench.seed import plug_of


def stamped(kind: str, url: str, device: str) -> Any:
    from tests.plugs import SimShelly, SimTasmota

    base = SimTasmota if kind == "tasmota" else SimShelly

    class Stamped(base):  # type: ignore[misc, valid-type]
        async def handle(self, topic: str, payload: bytes) -> None:
            switched: bool | None = None
            if topic.endswith("/POWER") and payload.strip().upper() in (b"ON", b"1"):
                switched = True
            elif topic.endswith("/POWER") and payload.strip().upper() in (b"OFF", b"0"):
                switched = False
            elif topic.endswith("/rpc") and b'"Switch.Set"' in payload:
                with contextlib.suppress(ValueError):
                    on = json.loads(payload)["params"].get("on")
                    switched = on if isinstance(on, bool) else None
            if switched is not None:
                word = "on" if switched else "off"
                print(f"{word} {self.device_id} {time.monotonic():.6f}", flush=True)
            await super().handle(topic, payload)

    return Stamped(url, device, tele_period=10.0)


async def main(url: str, chargers: list[int]) -> None:
    plugs = [stamped(plug_of(c)[0], url, plug_of(c)[1]) for c in chargers]
    await asyncio.gather(*(p.start() for p in plugs))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read(1) or closed.set())
    try:
        await closed.wait()
    finally:
        for plug in plugs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(plug.stop(), 5)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1], [int(a) for a in sys.argv[2:]]))
