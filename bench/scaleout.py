"""Figure 7: telemetry that scales out (issue #17). Two ChargeShare instances (the
product's App, as bench.botproc runs it, each with its probe) on one database and one
broker, both with ``MQTT_SHARE_GROUP``, while the fleet (bench.fleet) publishes the
telemetry of many plugs: each instance should handle about half of it, and neither
fall behind. Each instance polls its own local Bot API server (two pollers of one
bot would take each other's updates); only the MQTT side is measured here.

Per instance: the telemetry it handled (msg/s, counted after the bridge's own
handler), its share of all handled, its client's incoming queue, and the lag from
publish to handled (Shelly NotifyStatus carries the send time). Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from bench.stats import Row, median, pct

if TYPE_CHECKING:
    from bench.run import Ctx

GROUP_NAME = "chargeshare"
# plugs, seconds between two readings of a plug, seconds: 20,000 plugs every 10 s is
# 2,000 msg/s (about 1,000 for each instance)
FULL = (20_000, 10.0, 30.0)
QUICK = (2_000, 10.0, 6.0)
INSTANCES = 2


def _handled(samples: list[tuple[float, int, int]]) -> float:
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return float("nan")
    return (samples[-1][2] - samples[0][2]) / (samples[-1][0] - samples[0][0])


async def measure_scaleout(ctx: Ctx, quick: bool) -> None:
    from bench.run import ROOT, bot_config, end, new_api, prepare_api, start_bot

    plugs, period, seconds = QUICK if quick else FULL
    apis = [new_api() for _ in range(INSTANCES)]
    procs: list[asyncio.subprocess.Process] = []
    outs = [ctx.tmp / f"probe-scale{i}.json" for i in range(INSTANCES)]
    try:
        for i, api in enumerate(apis):
            await prepare_api(ctx, api)
            config = bot_config(ctx, api, outs[i], mqtt_share_group=GROUP_NAME)
            path = ctx.tmp / f"bot-scale{i}.json"
            path.write_text(json.dumps(config))
            proc, _startup, _rss = await start_bot(
                ctx, api, f"bot-scale{i}", ["bench.botproc", str(path)]
            )
            procs.append(proc)
        first = ctx.plan.lanes + 100
        args = [str(a) for a in (ctx.mqtt_url, first, plugs, period, seconds, 4)]
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fleet", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        await asyncio.sleep(min(2.0, seconds / 4))  # the fleet is up to speed
        lo = time.monotonic()
        stdout, _ = await publisher.communicate()
        hi = time.monotonic()
        report = json.loads(stdout.decode().strip().splitlines()[-1])
    finally:
        for proc in procs:
            await end(proc)
        for api in apis:
            await api.stop()
    published = float(report["rate"])
    probes: list[dict[str, Any]] = [
        json.loads(out.read_text()) if out.exists() else {} for out in outs
    ]
    windows = [
        [(at, q, n) for at, q, n in probe.get("backlog", []) if lo <= at <= hi] for probe in probes
    ]
    rates = [_handled(w) for w in windows]
    total = sum(r for r in rates if r == r)
    what = f"{plugs:,} plugs every {period:.0f} s"
    for i, (probe, samples, rate) in enumerate(zip(probes, windows, rates, strict=True)):
        name = "AB"[i]
        queued = [float(q) for _at, q, _n in samples]
        lag = [ms for at, ms in probe.get("mqtt_lag", []) if lo <= at <= hi]
        share = 100 * rate / total if total else float("nan")
        # keeping up: its half of what is published, and what waits at the end is a
        # moment's worth (mosquitto drops QoS 0 messages a slow subscriber leaves queued)
        keeps_up = bool(queued) and queued[-1] <= max(100, 4 * median(queued))
        ctx.rows += [
            Row(
                "7",
                f"instance {name}: telemetry handled, {what}",
                rate,
                rate,
                1,
                "msg/s",
                f"~{published / INSTANCES:,.0f}",
                rate >= 0.9 * published / INSTANCES,
            ),
            Row(
                "7",
                f"instance {name}: share of all handled",
                share,
                share,
                1,
                "%",
                "30-70",
                30 <= share <= 70,
            ),
            Row.of(
                "7",
                f"instance {name}: incoming queue",
                queued,
                "msgs",
                "no growing backlog",
                keeps_up,
            ),
            Row.of(
                "7",
                f"instance {name}: publish -> handled",
                lag,
                "ms",
                "p99 < 100",
                pct(lag, 0.99) < 100,
            ),
        ]
    ctx.notes.append(
        f"figure 7: {INSTANCES} instances (MQTT_SHARE_GROUP={GROUP_NAME}) handled "
        f"{total:,.0f} msg/s together while the fleet published {published:,.0f} msg/s"
    )
