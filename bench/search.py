"""How long /find's query takes as the catalogue grows (issue #3): figure 4 of
the full bench (``python -m bench``) on its own. Prints figures, asserts nothing.

    .venv/bin/python -m bench.search [--listings 100000] [--queries 300] [--database-url URL]
"""

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bench.seed import CENTRE, CITY_KM, seed
from models.db import create_engine, create_session_factory
from services import search


async def measure(url: str, queries: int, radius_km: float) -> list[float]:
    engine = create_engine(url)
    open_db = create_session_factory(engine)
    rng = random.Random(11)
    zone = ZoneInfo("Asia/Shanghai")
    now = datetime.now(UTC)
    samples = []
    found = 0
    for _ in range(queries):
        lat = CENTRE[0] + rng.uniform(-1, 1) * CITY_KM / 111
        lon = CENTRE[1] + rng.uniform(-1, 1) * CITY_KM / 95
        async with open_db() as db:
            started = time.perf_counter()
            ranked = await search.nearest(db, lat, lon, now=now, zone=zone, radius_km=radius_km)
            await search.load(db, ranked[:5])  # /find's first page
            samples.append((time.perf_counter() - started) * 1000)
            found += len(ranked)
    await engine.dispose()
    print(f"  mean results per query: {found / queries:.0f}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--radius-km", type=float, default=20.0, help="as /find asks")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        print(
            f"python {platform.python_version()}, {os.cpu_count()} cores, "
            f"{url.split(':')[0]}, {args.listings} listings, radius {args.radius_km} km"
        )
        started = time.perf_counter()
        asyncio.run(seed(url, args.listings))
        print(f"  seeded in {time.perf_counter() - started:.1f} s")
        samples = sorted(asyncio.run(measure(url, args.queries, args.radius_km)))
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(
            f"nearest(): median {statistics.median(samples):.2f} ms, p99 {p99:.2f} ms, "
            f"n={len(samples)}"
        )


if __name__ == "__main__":
    main()
