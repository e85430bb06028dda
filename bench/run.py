"""The whole bench: one command that sets everything up and prints one table.

    .venv/bin/python -m bench [--quick] [--database-url URL | --postgres]

What it starts: the tests' local Bot API server (tests.botapi, real HTTP on
loopback), a real mosquitto, simulated Tasmota and Shelly plugs (tests.plugs), a
seeded database (SQLite in a temporary directory unless told otherwise), and two
bot processes in turn: a bare aiogram echo bot, then ChargeShare (bot.app.App, as
``python -m bot`` runs it, with probes that only observe). Figures (issue #7):

1. updates/s for a mix of real commands (find with a location, open a card, book
   through to Confirm, the merchant's Accept), sent as fast as the bot takes them
   by many virtual users (closed loop); the same updates to the echo bot;
2. handler latency at 100 updates/s (in the bot process: arrival → first request);
3. QR scan to power: Start pressed → the plug gets its power-on, and → the user's
   "Charging started", over many starts on several plugs;
4. /find's query (services.search.nearest and the first page's rows, as /find
   calls them) among the listings;
5. thousands of plugs' telemetry from a few publisher connections while starts go
   on: the bridge's lag and backlog, QR-to-power, the bot's memory;
6. start-up to the first handled update, memory at rest;
7. (``--only 7``) two instances with MQTT_SHARE_GROUP under a fleet of 20,000 plugs
   (2,000 msg/s): each instance's share, queue and lag (bench/scaleout.py).
Nothing is asserted: the table says which targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.api import BenchAPI, Sent
from bench.seed import (
    MERCHANT_BASE,
    RIDER_BASE,
    merchant_of,
    plug_of,
    random_point,
    seed,
    token_of,
)
from bench.stats import Row, machine, median, pct, table
from services.errors import DomainError

ROOT = Path(__file__).resolve().parent.parent
GROUP = -1001234567890
ADMINS = (901, 902)
ZONE = ZoneInfo("Asia/Shanghai")
NAN = float("nan")


@dataclass
class Plan:
    listings: int
    merchants: int
    users: int  # virtual users for figures 1 and 2
    saturate_s: float
    paced_s: float
    paced_rate: float
    lanes: int  # plugs used for starts (figures 3 and 5)
    starts: int
    queries: int
    fleet_plugs: int
    fleet_period: float
    fleet_s: float
    fleet_connections: int
    # figure 3's stops, paced so that what a cycle owes (~12 messages and card edits:
    # request, acceptance, map, start, order x3, cards) stays under the outbox's rate
    # (Telegram's): ``paced_stops`` in all, each lane one cycle per ``stop_pace_s``
    paced_stops: int = 48
    stop_pace_s: float = 8.0


FULL = Plan(100_000, 50, 64, 20, 15, 100, 8, 200, 300, 10_000, 10.0, 30, 4)
QUICK = Plan(5_000, 10, 16, 3, 2, 100, 2, 10, 30, 1_000, 10.0, 4, 2, paced_stops=4, stop_pace_s=1.0)


@dataclass
class Ctx:
    plan: Plan
    tmp: Path
    url: str
    mqtt_url: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    photo: str = ""
    only: set[str] = field(default_factory=lambda: set("123456"))


# -- processes -----------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system, s): per update, it says what an
    update costs whatever else the machine is doing, where rates and latencies vary."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def spawn(ctx: Ctx, name: str, *argv: str) -> asyncio.subprocess.Process:
    log = (ctx.tmp / f"{name}.log").open("ab")  # the child writes to it
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *argv,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        stdin=asyncio.subprocess.DEVNULL,
    )


async def end(proc: asyncio.subprocess.Process, timeout: float = 30) -> None:  # noqa: ASYNC109
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def new_api() -> BenchAPI:
    return BenchAPI()


async def prepare_api(ctx: Ctx, api: BenchAPI) -> None:
    await api.start()
    for i in range(ctx.plan.merchants):
        api.add_user(MERCHANT_BASE + i, f"Merchant{i}")
    for i in range(ctx.plan.users + ctx.plan.lanes + 1):
        api.add_user(RIDER_BASE + i, f"Rider{i}")
    for admin in ADMINS:
        api.add_user(admin, f"Admin{admin}")
    api.add_group(GROUP, "ChargeShare moderation")


async def start_bot(
    ctx: Ctx, api: BenchAPI, name: str, argv: list[str]
) -> tuple[asyncio.subprocess.Process, float, float]:
    """Spawn a bot with an update already waiting: (process, ms to its answer, RSS at rest)."""
    user = RIDER_BASE + ctx.plan.users + ctx.plan.lanes  # nobody else's chat
    cursor = api.cursor(user)
    api.send_text(user, user, "/help")
    started = time.monotonic()
    proc = await spawn(ctx, name, *argv)
    try:
        sent, _ = await api.wait_sent(user, lambda s: s.method == "sendMessage", cursor, 90)
    except TimeoutError:
        await end(proc)
        raise SystemExit(f"{name} did not answer; see {ctx.tmp / (name + '.log')}") from None
    startup = (sent.at - started) * 1000
    await asyncio.sleep(2.0)
    return proc, startup, rss_mb(proc.pid)


async def register_merchants(ctx: Ctx, api: BenchAPI) -> dict[int, int]:
    """Each merchant says /help, so the bot has a message in their chat to press on."""
    ids = {}
    for i in range(ctx.plan.merchants):
        m = MERCHANT_BASE + i
        cursor = api.cursor(m)
        api.send_text(m, m, "/help")
        sent, _ = await api.wait_sent(m, lambda s: s.method == "sendMessage", cursor)
        ids[m] = sent.message_id or 1
    return ids


# -- virtual users (figures 1 and 2) -------------------------------------------------------


class Load:
    """Virtual users; each update's time from being queued to its answer is kept."""

    def __init__(self, api: BenchAPI, rate: float | None) -> None:
        self.api = api
        self.rate = rate
        self.next_at = 0.0
        self.done: list[tuple[float, float]] = []  # (queued, answered)
        self.errors = 0
        self.stopping = False

    async def pace(self) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        slot = max(self.next_at, now)
        self.next_at = slot + 1 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def step(
        self, chat: int, act: Callable[[], object], want: Callable[[Sent], bool], cursor: int
    ) -> tuple[Sent, int]:
        if self.stopping:
            raise asyncio.CancelledError
        await self.pace()
        queued = time.monotonic()
        act()
        sent, cursor = await self.api.wait_sent(chat, want, cursor, timeout=60)
        self.done.append((queued, sent.at))
        return sent, cursor

    async def run(self, users: list[Callable[[], Awaitable[None]]], seconds: float) -> float:
        async def forever(cycle: Callable[[], Awaitable[None]]) -> None:
            while not self.stopping:
                try:
                    await cycle()
                except TimeoutError:
                    self.errors += 1

        started = time.monotonic()
        tasks = [asyncio.create_task(forever(u)) for u in users]
        await asyncio.sleep(seconds)
        self.stopping = True
        await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return started

    def per_second(self, started: float, seconds: float, warmup: float) -> list[float]:
        buckets = [0] * int(seconds)
        for _queued, answered in self.done:
            i = int(answered - started)
            if 0 <= i < len(buckets):
                buckets[i] += 1
        return [float(b) for b in buckets[int(warmup) :]]

    def latencies(self) -> list[float]:
        return [(a - q) * 1000 for q, a in self.done]


def rate_row(figure: str, what: str, samples: list[float], **kw: Any) -> Row:
    """A rate: the median and the 1st percentile (the slow seconds) of 1-second windows."""
    return Row(figure, what, median(samples), pct(samples, 0.01), len(samples), "upd/s", **kw)


def message(s: Sent) -> bool:
    return s.method in ("sendMessage", "sendPhoto")


def ours(
    api: BenchAPI, load: Load, user: int, merchants: dict[int, int], seed_: int
) -> Callable[[], Awaitable[None]]:
    from ui.callbacks import BookingAction, BookingCb
    from ui.i18n import translator

    t = translator("en")
    e_bike, intro = t("kind.e_bike"), t("booking.summary_intro")
    rng = random.Random(seed_)
    count = 0

    async def cycle() -> None:
        nonlocal count
        count += 1
        u = user
        c = api.cursor(u)
        _, c = await load.step(u, lambda: api.send_text(u, u, "/find"), message, c)
        lat, lon = random_point(rng)
        found, c = await load.step(
            u,
            lambda: api.send_location(u, u, lat, lon),
            lambda s: message(s) and s.callback_data("1. ") is not None,
            c,
        )
        data = found.callback_data("1. ")
        assert data is not None and found.message_id is not None
        listing_id = int(data.rsplit(":", 1)[1])
        card, c = await load.step(
            u,
            lambda: api.press(u, u, found.message_id, data),
            lambda s: message(s) and s.callback_data("Book") is not None,
            c,
        )
        book = card.callback_data("Book")
        assert book is not None and card.message_id is not None
        _, c = await load.step(u, lambda: api.press(u, u, card.message_id, book), message, c)
        _, c = await load.step(u, lambda: api.send_text(u, u, e_bike), message, c)
        _, c = await load.step(u, lambda: api.send_text(u, u, "Yadea G5"), message, c)
        day = (datetime.now(ZONE) + timedelta(days=2 + (count * 7 + user) % 28)).date()
        hour = rng.randrange(0, 23)
        window = f"{day.isoformat()} {hour:02d}:00-{hour + 1:02d}:00"
        summary, c = await load.step(
            u,
            lambda: api.send_text(u, u, window),
            lambda s: message(s) and (s.callback_data("Confirm") is not None or s.text != intro),
            c,
        )
        confirm = summary.callback_data("Confirm")
        if confirm is None or summary.message_id is None:
            return  # the window was taken: the user starts again
        sent, c = await load.step(
            u,
            lambda: api.press(u, u, summary.message_id, confirm),
            lambda s: message(s) and "is requested" in s.text,
            c,
        )
        booking_id = int(sent.text.split("#", 1)[1].split()[0])
        m = merchant_of(listing_id, len(merchants))
        mc = api.cursor(m)
        data = BookingCb(action=BookingAction.ACCEPT, booking_id=booking_id).pack()
        await load.step(
            m,
            lambda: api.press(m, m, merchants[m], data),
            lambda s: s.method == "sendMessage" and f"#{booking_id} " in s.text,
            mc,
        )

    return cycle


def echo(
    api: BenchAPI, load: Load, user: int, merchants: dict[int, int], seed_: int
) -> Callable[[], Awaitable[None]]:
    """The same nine updates to the echo bot, each waiting for its answer."""
    rng = random.Random(seed_)
    m = MERCHANT_BASE + user % len(merchants)

    def answered(s: Sent) -> bool:
        return s.method == "answerCallbackQuery"

    async def cycle() -> None:
        u = user
        c = api.cursor(u)
        first, c = await load.step(u, lambda: api.send_text(u, u, "/find"), message, c)
        mid = first.message_id or 1
        lat, lon = random_point(rng)
        _, c = await load.step(u, lambda: api.send_location(u, u, lat, lon), message, c)
        _, c = await load.step(u, lambda: api.press(u, u, mid, "fd:card:0::0:1"), answered, c)
        _, c = await load.step(u, lambda: api.press(u, u, mid, "bk:1"), answered, c)
        _, c = await load.step(u, lambda: api.send_text(u, u, "E-bike"), message, c)
        _, c = await load.step(u, lambda: api.send_text(u, u, "Yadea G5"), message, c)
        _, c = await load.step(u, lambda: api.send_text(u, u, "2030-01-01 09:00-10:00"), message, c)
        _, c = await load.step(u, lambda: api.press(u, u, mid, "bg:confirm:0:"), answered, c)
        mc = api.cursor(m)
        await load.step(m, lambda: api.press(m, m, merchants[m], "bg:accept:1:"), answered, mc)

    return cycle


async def throughput(
    api: BenchAPI,
    make: Callable[..., Callable[[], Awaitable[None]]],
    merchants: dict[int, int],
    plan: Plan,
    rate: float | None,
    seconds: float,
) -> Load:
    load = Load(api, rate)
    users = [make(api, load, RIDER_BASE + i, merchants, 1000 + i) for i in range(plan.users)]
    load.started = await load.run(users, seconds)  # type: ignore[attr-defined]
    return load


# -- plugs and starts (figures 3 and 5) ----------------------------------------------------


class Plugs:
    """The lanes' plugs, run by bench.plugproc in a process of their own; the time each
    got its last power-on command, read from that process's output."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.power_on: dict[str, float] = {}
        self.power_off: dict[str, float] = {}  # figure 3's Stop
        self._heard = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, ctx: Ctx, chargers: list[int]) -> Plugs:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.plugproc",
            ctx.mqtt_url,
            *map(str, chargers),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"bench.plugproc did not start: {line!r}")
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] in (b"on", b"off"):
                stamps = self.power_on if parts[0] == b"on" else self.power_off
                stamps[parts[1].decode()] = float(parts[2])
                async with self._heard:
                    self._heard.notify_all()

    async def power_on_at(self, device: str, timeout: float = 2.0) -> float | None:  # noqa: ASYNC109
        """The stamp of the last power-on (its line may come just after the answer)."""
        return await self._stamp(self.power_on, device, timeout)

    async def power_off_at(self, device: str, timeout: float = 2.0) -> float | None:  # noqa: ASYNC109
        return await self._stamp(self.power_off, device, timeout)

    async def _stamp(self, stamps: dict[str, float], device: str, timeout: float) -> float | None:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._heard:
                await self._heard.wait_for(lambda: device in stamps)
        return stamps.get(device)

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


async def accepted_booking(open_db: Any, charger_id: int, user: int) -> int:
    """A booking from a minute ago for 30 minutes, accepted (the bench's own writes
    share one engine: a fresh one per booking compiled every query again, which
    stalled the bench's loop, and with it the plugs' clocks)."""
    from models.base import utcnow
    from services import bookings
    from services.bookings import BookingRules

    now = utcnow()
    start = now - timedelta(minutes=1)
    async with open_db() as db:
        booking = await bookings.request(
            db,
            user_id=user,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="",
            start=start,
            end=now + timedelta(minutes=30),
            rules=BookingRules(zone=ZONE),
            now=start,
        )
        await bookings.accept(db, booking_id=booking.id, merchant_id=booking.merchant_id, now=start)
        return booking.id


@dataclass
class Starts:
    to_power: list[float] = field(default_factory=list)
    to_started: list[float] = field(default_factory=list)
    # each counted start: (rider, plug id, the Start button's data, pressed, plug got
    # power-on, "Charging started" at the server), lined up with the bot's probe
    trace: list[tuple[int, str, str, float, float, float]] = field(default_factory=list)
    # Yes (stop) pressed -> the order's message at the rider, the merchant and the group,
    # the last of the three; and the same from the plug's getting the power-off
    to_orders: list[float] = field(default_factory=list)
    off_to_orders: list[float] = field(default_factory=list)
    # each counted stop: (rider, merchant, plug id, the Yes button's data, pressed, plug
    # got power-off, the last order message at the server)
    stop_trace: list[tuple[int, int, str, str, float, float, float]] = field(default_factory=list)
    failures: int = 0
    notes: set[str] = field(default_factory=set)


async def lane(
    ctx: Ctx,
    api: BenchAPI,
    open_db: Any,
    plugs: Plugs,
    index: int,
    count: int,
    out: Starts,
    until: float | None,
    pace: float = 0.0,
) -> None:
    """``pace``: seconds from one of this lane's cycles to its next (0: at once); the
    lanes' cycles are staggered across it."""
    charger = index + 1
    _kind, device = plug_of(charger)
    user = RIDER_BASE + ctx.plan.users + index
    try:
        done = attempts = 0
        warm = False  # each lane's first start warms the bot's caches: not counted
        booked = False  # a start that failed leaves its booking open: press Start again
        due = time.monotonic() + pace * index / ctx.plan.lanes
        while (until is None and done < count and attempts < 2 * count + 2) or (
            until is not None and time.monotonic() < until
        ):
            if pace:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due = max(due + pace, time.monotonic())
            attempts += 1
            if not booked:
                try:
                    await accepted_booking(open_db, charger, user)
                except DomainError as error:
                    out.failures += 1
                    out.notes.add(error.key)
                    break
                booked = True
            c = api.cursor(user)
            api.send_text(user, user, f"/start {token_of(charger)}")
            card, c = await api.wait_sent(
                user, lambda s: s.callback_data("Start charging") is not None, c
            )
            data = card.callback_data("Start charging")
            assert data is not None and card.message_id is not None
            plugs.power_on.pop(device, None)
            pressed = time.monotonic()
            api.press(user, user, card.message_id, data)
            try:
                started, c = await api.wait_sent(
                    user, lambda s: "Charging started" in s.text or "did not confirm" in s.text, c
                )
            except TimeoutError:
                out.failures += 1
                out.notes.add("no answer")
                continue
            power_on = await plugs.power_on_at(device)
            if "Charging started" not in started.text or power_on is None:
                out.failures += 1
                out.notes.add(started.text[:60])
                continue
            booked = False
            if warm:
                done += 1
                out.to_power.append((power_on - pressed) * 1000)
                out.to_started.append((started.at - pressed) * 1000)
                out.trace.append((user, device, data, pressed, power_on, started.at))
            warm = True
            stop = started.callback_data("Stop charging")
            assert stop is not None and started.message_id is not None
            api.press(user, user, started.message_id, stop)
            ask, c = await api.wait_sent(
                user, lambda s: s.callback_data("Yes, stop") is not None, c
            )
            yes = ask.callback_data("Yes, stop")
            assert yes is not None and ask.message_id is not None
            merchant = merchant_of(charger, ctx.plan.merchants)
            at_merchant, at_group = api.cursor(merchant), api.cursor(GROUP)
            plugs.power_off.pop(device, None)
            stopped = time.monotonic()
            api.press(user, user, ask.message_id, yes)
            # the order closes the booking; the next one may overlap it only then
            order, c = await api.wait_sent(user, lambda s: "Order #" in s.text, c)
            number = order.text.split("Order #", 1)[1].split()[0].rstrip(".,:")
            mine = f"Order #{number}"
            # the merchant's and the group's copies of this order (other lanes' orders
            # go to the group too)
            arrived = [order.at]
            for chat, since in ((merchant, at_merchant), (GROUP, at_group)):
                copy, _ = await api.wait_sent(
                    chat,
                    lambda s, mine=mine: s.method == "sendMessage" and mine in s.text,
                    since,
                )
                arrived.append(copy.at)
            power_off = await plugs.power_off_at(device)
            if done and power_off is not None:  # a counted start: a warm stop
                out.to_orders.append((max(arrived) - stopped) * 1000)
                out.off_to_orders.append((max(arrived) - power_off) * 1000)
                out.stop_trace.append(
                    (user, merchant, device, yes, stopped, power_off, max(arrived))
                )
    except TimeoutError:  # a step got no answer: counted, the other lanes go on
        out.failures += 1
        out.notes.add("no answer")


async def starts(
    ctx: Ctx, api: BenchAPI, total: int | None, seconds: float | None = None, pace: float = 0.0
) -> Starts:
    from models.db import create_engine, create_session_factory

    out = Starts()
    until = None if seconds is None else time.monotonic() + seconds
    per_lane = 0 if total is None else -(-total // ctx.plan.lanes)
    engine = create_engine(ctx.url, pool_size=2, max_overflow=0)
    plugs = await Plugs.start(ctx, [i + 1 for i in range(ctx.plan.lanes)])
    try:
        open_db = create_session_factory(engine)
        await asyncio.gather(
            *(
                lane(ctx, api, open_db, plugs, i, per_lane, out, until, pace)
                for i in range(ctx.plan.lanes)
            )
        )
    finally:
        await plugs.stop()
        await engine.dispose()
    return out


async def outbox_drained(ctx: Ctx, timeout: float = 120) -> None:  # noqa: ASYNC109
    """Until the bot's outbox owes nothing (or ``timeout``: said in the notes)."""
    from models.db import create_engine, create_session_factory
    from services.outbox import pending_count

    engine = create_engine(ctx.url, pool_size=1, max_overflow=0)
    try:
        open_db = create_session_factory(engine)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with open_db() as db:
                if await pending_count(db) == 0:
                    return
            await asyncio.sleep(0.2)
        ctx.notes.append(f"the outbox still owed messages after {timeout:g} s")
    finally:
        await engine.dispose()


# -- the figures ---------------------------------------------------------------------------


async def run(ctx: Ctx) -> None:
    plan = ctx.plan
    from tests.support.services import start_mosquitto

    broker = start_mosquitto(ctx.tmp / "mosquitto")
    ctx.mqtt_url = broker.url
    echo_api, bot_api = new_api(), new_api()
    try:
        for api in (echo_api, bot_api):
            await prepare_api(ctx, api)
        ctx.photo = bot_api.store_photo()
        t0 = time.monotonic()
        await seed(
            ctx.url,
            plan.listings,
            merchants=plan.merchants,
            riders=plan.users + plan.lanes + 1,
            photo_file_id=ctx.photo,
        )
        ctx.notes.append(f"seeded {plan.listings:,} listings in {time.monotonic() - t0:.1f} s")
        if ctx.only & set("126"):
            await measure_echo(ctx, echo_api)
        if ctx.only & set("12356"):
            await measure_bot(ctx, bot_api)
        if "1" in ctx.only:
            await measure_echo_floor(ctx, echo_api)
        if "4" in ctx.only:
            await measure_search(ctx)
        if "7" in ctx.only:
            from bench.scaleout import measure_scaleout

            await measure_scaleout(ctx, quick=plan is QUICK)
    finally:
        await echo_api.stop()
        await bot_api.stop()
        broker.stop()


async def measure_echo(ctx: Ctx, api: BenchAPI) -> None:
    plan = ctx.plan
    proc, startup, rss = await start_bot(ctx, api, "echo", ["bench.echoproc", api.url, api.token])
    ctx.echo = {"startup": startup, "rss": rss}  # type: ignore[attr-defined]
    try:
        merchants = await register_merchants(ctx, api)
        ctx.echo["rate"] = ctx.echo["paced"] = []  # type: ignore[attr-defined]
        if "1" in ctx.only:
            cpu, sent = cpu_s(proc.pid), len(api.requests)
            load = await throughput(api, echo, merchants, plan, None, plan.saturate_s)
            ctx.echo["cpu"] = (cpu_s(proc.pid) - cpu) * 1000 / max(len(load.done), 1)  # type: ignore[attr-defined]
            ctx.echo["rate"] = load.per_second(load.started, plan.saturate_s, 1)  # type: ignore[attr-defined]
            ctx.echo["requests"] = (len(api.requests) - sent) / max(len(load.done), 1)  # type: ignore[attr-defined]
        if "2" in ctx.only:
            paced = await throughput(api, echo, merchants, plan, plan.paced_rate, plan.paced_s)
            ctx.echo["paced"] = paced.latencies()  # type: ignore[attr-defined]
    finally:
        await end(proc)


async def measure_echo_floor(ctx: Ctx, api: BenchAPI) -> None:
    """Figure 1's floor: the echo bot making as many Bot API requests per update as
    ChargeShare made in the same mix (the extra ones to a chat nobody waits on). What
    it reaches is what aiogram, aiohttp and pydantic allow for that many requests,
    with no database, no rendering and none of our middlewares."""
    ours_, echo_ = getattr(ctx, "ours", {}), getattr(ctx, "echo", {})
    calls = ours_.get("requests", NAN)
    if math.isnan(calls) or not echo_.get("rate"):  # no figure 1 for one of them
        return
    argv = ["bench.echoproc", api.url, api.token, f"{calls:.3f}", str(GROUP)]
    proc, _, _ = await start_bot(ctx, api, "echo-floor", argv)
    try:
        merchants = await register_merchants(ctx, api)
        cpu, sent = cpu_s(proc.pid), len(api.requests)
        load = await throughput(api, echo, merchants, ctx.plan, None, ctx.plan.saturate_s)
        done = max(len(load.done), 1)
        cpu_per_update = (cpu_s(proc.pid) - cpu) * 1000 / done
        made = (len(api.requests) - sent) / done
        rate = load.per_second(load.started, ctx.plan.saturate_s, 1)
    finally:
        await end(proc)
    floor = median(rate) / median(echo_["rate"]) if rate else NAN
    ctx.rows += [
        rate_row("1", f"updates/s, echo making {made:.2f} requests per update", rate),
        Row("1", "that echo / echo (medians): the floor", floor, floor, 1, "x"),
        Row("1", "bot CPU per update, that echo", cpu_per_update, cpu_per_update, 1, "ms"),
    ]


def bot_config(ctx: Ctx, api: BenchAPI, out: Path, **settings: str) -> dict[str, Any]:
    """bench.botproc's configuration: the product's settings, where its probe writes."""
    return {
        "out": str(out),
        "settings": {
            "bot_token": api.token,
            "telegram_api_url": api.url,
            "database_url": ctx.url,
            "moderation_chat_id": GROUP,
            "admin_ids": ",".join(str(a) for a in ADMINS),
            "mqtt_url": ctx.mqtt_url,
            **settings,
        },
    }


async def measure_bot(ctx: Ctx, api: BenchAPI) -> None:
    plan = ctx.plan
    out = ctx.tmp / "probe.json"
    (ctx.tmp / "bot.json").write_text(json.dumps(bot_config(ctx, api, out)))
    proc, startup, rss = await start_bot(
        ctx, api, "bot", ["bench.botproc", str(ctx.tmp / "bot.json")]
    )
    echo_ = getattr(ctx, "echo", {"rate": [], "paced": [], "startup": NAN, "rss": NAN})
    windows: dict[str, tuple[float, float]] = {}
    paced_latency: list[float] = []
    try:
        merchants = await register_merchants(ctx, api)
        if "1" in ctx.only:
            cpu, sent = cpu_s(proc.pid), len(api.requests)
            began = time.monotonic()
            load = await throughput(api, ours, merchants, plan, None, plan.saturate_s)
            windows["saturate"] = (began, time.monotonic())
            cpu_per_update = (cpu_s(proc.pid) - cpu) * 1000 / max(len(load.done), 1)
            made = collections.Counter(name for name, _ in api.requests[sent:])
            requests = sum(made.values()) / max(len(load.done), 1)
            ctx.ours = {"requests": requests}  # type: ignore[attr-defined]
            by_method = ", ".join(
                f"{name} {n / max(len(load.done), 1):.2f}" for name, n in made.most_common()
            )
            ctx.notes.append(f"figure 1: ChargeShare's Bot API requests per update: {by_method}")
            rate = load.per_second(load.started, plan.saturate_s, 1)
            ratio = median(rate) / median(echo_["rate"]) if echo_["rate"] else NAN
            ctx.rows += [
                rate_row(
                    "1",
                    f"updates/s, ChargeShare mix, {plan.users} users",
                    rate,
                    target=">= 0.5 x echo",
                    met=ratio >= 0.5,
                ),
                rate_row("1", "updates/s, bare aiogram echo, same updates", echo_["rate"]),
                Row(
                    "1",
                    "ChargeShare / echo (medians)",
                    ratio,
                    ratio,
                    1,
                    "x",
                    ">= 0.5",
                    ratio >= 0.5,
                ),
                Row(
                    "1", "bot CPU per update, ChargeShare", cpu_per_update, cpu_per_update, 1, "ms"
                ),
                Row(
                    "1",
                    "bot CPU per update, echo",
                    echo_.get("cpu", NAN),
                    echo_.get("cpu", NAN),
                    1,
                    "ms",
                ),
                Row("1", "Bot API requests per update, ChargeShare", requests, requests, 1, ""),
                Row(
                    "1",
                    "Bot API requests per update, echo",
                    echo_.get("requests", NAN),
                    echo_.get("requests", NAN),
                    1,
                    "",
                ),
            ]
            if load.errors:
                ctx.notes.append(f"figure 1: {load.errors} steps got no answer within 60 s")
        if "2" in ctx.only:
            began = time.monotonic()
            paced = await throughput(api, ours, merchants, plan, plan.paced_rate, plan.paced_s)
            windows["paced"] = (began, time.monotonic())
            paced_latency = paced.latencies()
        if "3" in ctx.only:
            result = await starts(ctx, api, plan.starts)
            # closed loop, the lanes' stops owe the outbox more than its rate: their
            # orders wait in its queue; paced, what the bot itself takes
            await outbox_drained(ctx)  # what the closed loop left owed is not counted
            stops = await starts(ctx, api, plan.paced_stops, pace=plan.stop_pace_s)
            result.failures += stops.failures
            result.notes |= stops.notes
            per_second = plan.lanes / plan.stop_pace_s
            ctx.rows += [
                ms_row("3", "Start pressed -> plug gets power-on", result.to_power, 20),
                ms_row("3", "Start pressed -> 'Charging started'", result.to_started, 50),
                Row.of(
                    "3",
                    "Stop (Yes) -> order at all three, closed loop (outbox at its rate)",
                    result.to_orders,
                    "ms",
                ),
                Row.of(
                    "3",
                    f"Stop (Yes) -> order at rider+merchant+group, {per_second:g} stops/s",
                    stops.to_orders,
                    "ms",
                ),
                ms_row(
                    "3",
                    f"plug gets power-off -> order at all three, {per_second:g} stops/s",
                    stops.off_to_orders,
                    50,
                ),
            ]
            if result.failures:
                ctx.notes.append(
                    f"figure 3: {result.failures} failed starts {sorted(result.notes)}"
                )
        if "5" in ctx.only:
            await fleet(ctx, api, proc, windows)
    finally:
        await end(proc)
    probe = json.loads(out.read_text()) if out.exists() else {}
    if "1" in ctx.only:
        ctx.rows += sql_rows(probe, windows["saturate"], ctx.notes)
    if "3" in ctx.only:
        ctx.rows += start_trace(result.trace, probe)
        ctx.rows += stop_trace(stops.stop_trace, probe)
    if "2" in ctx.only:
        lo, hi = windows["paced"]
        handler = [ms for at, ms, _m in probe.get("latency", []) if lo <= at <= hi]
        rate = f"{plan.paced_rate:.0f} upd/s"
        ctx.rows += [
            ms_row("2", f"handler latency at {rate} (in process)", handler, 20),
            Row.of("2", f"queued -> answered at the server, {rate}", paced_latency, "ms"),
            Row.of("2", f"queued -> answered at the server, echo, {rate}", echo_["paced"], "ms"),
        ]
    if "5" in ctx.only:
        lo, hi = windows["fleet"]
        lag = [ms for at, ms in probe.get("mqtt_lag", []) if lo <= at <= hi]
        samples = [(at, q, n) for at, q, n in probe.get("backlog", []) if lo <= at <= hi]
        queued = [float(q) for _at, q, _n in samples]
        # keeping up: it handles what is published (mosquitto drops QoS 0 messages a
        # slow subscriber leaves queued), and what waits at the end is a moment's worth
        handled, keeps_up = 0.0, False
        if len(samples) > 2:
            handled = (samples[-1][2] - samples[0][2]) / (samples[-1][0] - samples[0][0])
            published: float = ctx.fleet_rate  # type: ignore[attr-defined]
            keeps_up = handled >= 0.97 * published and queued[-1] <= max(100, 4 * median(queued))
        ctx.rows += [
            Row.of(
                "5",
                "telemetry: publish -> bridge handled",
                lag,
                "ms",
                "no growing backlog",
                keeps_up,
            ),
            Row.of("5", "telemetry: bridge's incoming queue", queued, "msgs"),
        ]
        if len(samples) > 2:
            ctx.notes.append(
                f"figure 5: the bridge handled {handled:,.0f} msg/s "
                f"while the fleet published {ctx.fleet_rate:,.0f} msg/s"  # type: ignore[attr-defined]
            )
    if "6" in ctx.only:
        ctx.rows += [
            Row("6", "start-up to first handled update, ChargeShare", startup, startup, 1, "ms"),
            Row(
                "6",
                "start-up to first handled update, echo",
                echo_["startup"],
                echo_["startup"],
                1,
                "ms",
            ),
            Row("6", "RSS at rest, ChargeShare", rss, rss, 1, "MB"),
            Row("6", "RSS at rest, echo", echo_["rss"], echo_["rss"], 1, "MB"),
        ]


def sql_rows(probe: dict[str, Any], window: tuple[float, float], notes: list[str]) -> list[Row]:
    """The SQL each update of figure 1's mix made (counted in the bot process), per
    update: statements (BEGIN and COMMIT not counted) and transactions."""
    lo, hi = window
    counts = [(n, tx) for at, n, tx, _w in probe.get("sql", []) if lo <= at <= hi]
    if not counts:
        return []
    steps: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for at, n, tx, what in probe.get("sql", []):
        if lo <= at <= hi:
            steps[what].append((n, tx))
    notes.append(
        "figure 1: SQL per step (statements in transactions, means): "
        + ", ".join(
            f"{what} {statistics.fmean(n for n, _ in c):.1f} in "
            f"{statistics.fmean(t for _, t in c):.1f}"
            for what, c in sorted(steps.items())
        )
    )
    statements = [float(n) for n, _ in counts]
    transactions = [float(tx) for _, tx in counts]
    mean_n, mean_tx = statistics.fmean(statements), statistics.fmean(transactions)
    # the target is both ("<= 3 statements in 1 transaction"): each row says its half
    n = len(counts)
    return [
        Row(
            "1",
            "SQL statements per update (mean)",
            mean_n,
            pct(statements, 0.99),
            n,
            "",
            "<= 3",
            mean_n <= 3,
        ),
        Row(
            "1",
            "transactions per update (mean)",
            mean_tx,
            pct(transactions, 0.99),
            n,
            "",
            "<= 1",
            mean_tx <= 1,
        ),
    ]


def start_trace(
    trace: list[tuple[int, str, str, float, float, float]], probe: dict[str, Any]
) -> list[Row]:
    """Figure 3 step by step: the bench's stamps (the press leaving the Bot API server,
    the plug getting power-on, "Charging started" arriving there) lined up with the
    bot's (the press arriving, the plug's confirmation arriving, "Charging started"
    leaving). One clock: time.monotonic() is system-wide."""
    presses = probe.get("presses", [])
    confirmations = probe.get("confirmations", [])
    started = probe.get("started", [])
    commands = probe.get("commands", [])
    legs: dict[str, list[float]] = {k: [] for k in ("in", "bot", "wire", "plug", "render", "out")}
    for user, device, data, pressed, power_on, at_server in trace:
        arrived = next((t for t, u, d in presses if u == user and d == data and t >= pressed), None)
        heard = next(
            (t for t, topic in confirmations if device in topic.split("/") and t >= power_on),
            None,
        )
        left = next((t for t, chat in started if chat == user and heard and t >= heard), None)
        sent = next(
            (t for t, topic in commands if device in topic.split("/") and arrived and t >= arrived),
            None,
        )
        if arrived is None or heard is None or left is None or sent is None:
            continue
        legs["in"].append((arrived - pressed) * 1000)
        legs["bot"].append((sent - arrived) * 1000)
        legs["wire"].append((power_on - sent) * 1000)
        legs["plug"].append((heard - power_on) * 1000)
        legs["render"].append((left - heard) * 1000)
        legs["out"].append((at_server - left) * 1000)
    return [
        Row.of("3", "  trace: press -> update in the bot", legs["in"], "ms"),
        Row.of("3", "  trace: update in the bot -> power-on published", legs["bot"], "ms"),
        Row.of("3", "  trace: power-on published -> the plug gets it", legs["wire"], "ms"),
        Row.of(
            "3", "  trace: plug gets power-on -> its confirmation in the bot", legs["plug"], "ms"
        ),
        ms_row(
            "3", "plug's confirmation -> 'Charging started' sent (in the bot)", legs["render"], 10
        ),
        Row.of("3", "  trace: 'Charging started' sent -> at the server", legs["out"], "ms"),
    ]


def stop_trace(
    trace: list[tuple[int, int, str, str, float, float, float]], probe: dict[str, Any]
) -> list[Row]:
    """Figure 3's Stop step by step, as ``start_trace``: Yes arriving in the bot, the
    power-off published, the plug getting it, its "off" arriving, the three order
    messages leaving the bot (the last of them), at the server."""
    presses, offs = probe.get("presses", []), probe.get("offs", [])
    replies, orders = probe.get("replies", []), probe.get("orders", [])
    legs: dict[str, list[float]] = {k: [] for k in ("in", "bot", "wire", "plug", "order", "out")}
    for user, merchant, device, data, pressed, power_off, at_server in trace:
        arrived = next((t for t, u, d in presses if u == user and d == data and t >= pressed), None)
        if arrived is None:
            continue
        sent = next((t for t, topic in offs if device in topic.split("/") and t >= arrived), None)
        heard = next(
            (t for t, topic in replies if device in topic.split("/") and t >= power_off), None
        )
        left = [
            next((t for t, c, _m in orders if c == chat and heard and t >= heard), None)
            for chat in (user, merchant, GROUP)
        ]
        if sent is None or heard is None or None in left:
            continue
        last = max(t for t in left if t is not None)
        legs["in"].append((arrived - pressed) * 1000)
        legs["bot"].append((sent - arrived) * 1000)
        legs["wire"].append((power_off - sent) * 1000)
        legs["plug"].append((heard - power_off) * 1000)
        legs["order"].append((last - heard) * 1000)
        legs["out"].append((at_server - last) * 1000)
    return [
        Row.of("3", "  stop trace: Yes -> update in the bot", legs["in"], "ms"),
        Row.of("3", "  stop trace: update in the bot -> power-off published", legs["bot"], "ms"),
        Row.of("3", "  stop trace: published -> the plug gets it", legs["wire"], "ms"),
        Row.of("3", "  stop trace: plug gets it -> its 'off' in the bot", legs["plug"], "ms"),
        Row.of(
            "3", "  stop trace: 'off' in the bot -> 3rd order message sent", legs["order"], "ms"
        ),
        Row.of("3", "  stop trace: 3rd order message sent -> at the server", legs["out"], "ms"),
    ]


def ms_row(figure: str, what: str, samples: list[float], p99_below: float) -> Row:
    return Row.of(
        figure, what, samples, "ms", f"p99 < {p99_below:g}", pct(samples, 0.99) < p99_below
    )


async def fleet(ctx: Ctx, api: BenchAPI, proc: asyncio.subprocess.Process, windows: dict) -> None:
    plan = ctx.plan
    first = plan.lanes + 100
    args = [
        str(a)
        for a in (
            ctx.mqtt_url,
            first,
            plan.fleet_plugs,
            plan.fleet_period,
            plan.fleet_s,
            plan.fleet_connections,
        )
    ]
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fleet", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    rss: list[float] = []

    async def watch() -> None:
        while True:
            rss.append(rss_mb(proc.pid))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(min(2.0, plan.fleet_s / 4))  # the fleet is up to speed
    lo = time.monotonic()
    result = await starts(ctx, api, None, seconds=max(1.0, plan.fleet_s - 3))
    stdout, _ = await publisher.communicate()
    windows["fleet"] = (lo, time.monotonic())
    watcher.cancel()
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    ctx.fleet_rate = report["rate"]  # type: ignore[attr-defined]
    what = f"{plan.fleet_plugs:,} plugs every {plan.fleet_period:.0f} s"
    ctx.rows += [
        ms_row("5", f"Start -> power-on, {what}", result.to_power, 30),
        ms_row("5", f"Start -> 'Charging started', {what}", result.to_started, 30),
        Row.of("5", "bot RSS during the fleet (max < 300)", rss, "MB", "< 300", max(rss) < 300),
    ]
    if result.failures:
        ctx.notes.append(f"figure 5: {result.failures} failed starts {sorted(result.notes)}")


async def measure_search(ctx: Ctx) -> None:
    from models.base import utcnow
    from models.db import create_engine, create_session_factory
    from services import search

    engine = create_engine(ctx.url)
    open_db = create_session_factory(engine)
    rng = random.Random(11)
    samples, found = [], 0
    # The query runs here, in the bench's process, whose heap holds every message of
    # figures 1-3: full collections of it (tens of ms) are not the query's cost. The
    # bot freezes its start-up heap the same way (bot/app.py).
    gc.collect()
    gc.freeze()
    for _ in range(ctx.plan.queries):
        lat, lon = random_point(rng)
        async with open_db() as db:
            began = time.perf_counter()
            ranked = await search.nearest(db, lat, lon, now=utcnow(), zone=ZONE)
            await search.load(db, ranked[:5])  # /find's first page
            samples.append((time.perf_counter() - began) * 1000)
            found += len(ranked)
    gc.unfreeze()
    await engine.dispose()
    ctx.rows.append(
        Row.of(
            "4",
            f"nearest() + first page among {ctx.plan.listings:,} listings",
            samples,
            "ms",
            "p99 < 10",
            pct(samples, 0.99) < 10,
        ),
    )
    ctx.notes.append(f"figure 4: {found / max(1, ctx.plan.queries):.0f} hits per query on average")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: small city, short phases"
    )
    parser.add_argument(
        "--database-url", help="an empty database to seed (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--only", default="1,2,3,4,5,6", help="figures to measure, e.g. 1,2 (default: all)"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL (tests.support)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    began = time.monotonic()
    keep = os.environ.get("BENCH_KEEP")  # keep the logs (bot.log, echo.log) there
    tmp = tempfile.mkdtemp(prefix="chargeshare-bench-")
    if keep:
        print(f"logs in {tmp}", flush=True)
    server = None
    url = args.database_url
    try:
        if args.postgres and not url:
            from tests.support.services import start_postgres

            server = start_postgres(Path(tmp) / "postgres")
            url = server.url
        url = url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        ctx = Ctx(plan, Path(tmp), url, "", only=set(args.only.split(",")))
        asyncio.run(run(ctx))
    finally:
        if server is not None:
            server.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    database = url.split("://", 1)[0] + (
        "" if url.startswith("sqlite") else f" ({url.rsplit('/', 1)[-1]})"
    )
    header = [
        f"ChargeShare bench{' (--quick)' if args.quick else ''}, "
        f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine()}",
        f"database: {database}; {plan.listings:,} listings; broker: mosquitto on loopback",
        "rates: median and p99 columns are of 1-second windows "
        "(for a rate the p99 column is the 1st percentile: the slow seconds)",
    ]
    print(table(sorted(ctx.rows, key=lambda r: r.figure), header))
    for note in ctx.notes:
        print(f"- {note}")
    print(f"- the bench took {time.monotonic() - began:.0f} s", flush=True)
