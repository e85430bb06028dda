"""A bot killed in the middle of a start or a stop (issue #12, item 12): the next
process asks the plug at once and finishes the step from its answer, instead of
waiting for fixed timeouts (60 s for a start, 30 s for a stop).

`python -m bot` runs as a real process against the local Bot API server, a real
mosquitto and simulated plugs, and is killed with SIGKILL right after the power
command reached the plug, before the plug's confirmation could reach the bot. The
plug has (or has not) switched meanwhile; a second process starts; the rider learns
the outcome within seconds of it, and the charger can be started again at once.
"""

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from models import BookingStatus, SessionStatus
from models.base import utcnow
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import GROUP, BotHarness
from tests.plugs import SimPlug
from tests.support.services import MosquittoServer
from tests.test_flow_booking import MERCHANT, OTHER_RIDER, RIDER
from tests.test_flow_charging import (
    _bot_process,
    accepted_booking,
    api,  # noqa: F401  (fixture)
    label_token,
    order_messages,
    plug_for,
    plugs,  # noqa: F401  (fixture)
    rows,
    scan_and_start,
    until,
)

# The restarted process must tell the rider this soon after it serves (it may only
# act once the dead process's own confirmation timeout, 2 s here, plus 5 s is over;
# before the fix it took 60 s for a start and 30 s for a stop).
PROMPT = 8.0


def _power_commands(plug: SimPlug, on: bool) -> int:
    """How many power-on (or -off) commands reached the plug."""
    count = 0
    for topic, payload, _ in plug.commands:
        if topic.endswith("/POWER"):
            count += payload == (b"ON" if on else b"OFF")
        elif topic.endswith("/rpc"):
            request = json.loads(payload)
            count += request.get("method") == "Switch.Set" and request["params"]["on"] is on
    return count


class Bots:
    """The bot processes of one test: started, killed, stopped at the end."""

    def __init__(self, server: FakeBotAPI, url: str, broker: MosquittoServer, cwd: Path) -> None:
        self.api, self.url, self.broker, self.cwd = server, url, broker, cwd
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> float:
        """A new bot process; returns when it spawned (monotonic time)."""
        self.processes.append(await _bot_process(self.api, self.url, self.broker, self.cwd))
        return time.monotonic()

    async def kill(self) -> None:
        process = self.processes[-1]
        process.kill()
        await process.wait()

    async def serving(self, driver: BotHarness) -> float:
        """Wait until the newest process answers a command; returns when (monotonic)."""
        after = self.api.last_message_id(OTHER_RIDER)
        self.api.send_text(OTHER_RIDER, OTHER_RIDER, "/help")
        await driver.expect(OTHER_RIDER, "ChargeShare", after, timeout=30)
        return time.monotonic()

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                await asyncio.wait_for(process.wait(), 20)


@pytest.fixture
async def bots(
    api: FakeBotAPI,  # noqa: F811
    database_url: str,
    broker: MosquittoServer,
    tmp_path: Path,
) -> AsyncIterator[Bots]:
    processes = Bots(api, database_url, broker, tmp_path)
    yield processes
    await processes.close()


async def _ready(
    bots: Bots, url: str, broker: MosquittoServer, started: list[SimPlug], family: str
) -> tuple[BotHarness, int, str, SimPlug]:
    driver = BotHarness(bots.api, url)  # only its say/expect/press helpers
    await bots.start()
    await bots.api.wait_for_poller(timeout=30)
    charger_id, token = await label_token(driver, url)
    plug = await plug_for(family, url, broker, charger_id, started)
    now = utcnow()
    await accepted_booking(url, charger_id, RIDER, now, now + timedelta(hours=1))
    return driver, charger_id, token, plug


async def _start_again_at_once(driver: BotHarness, url: str, charger_id: int, token: str) -> None:
    """Another rider's booking on the same charger starts right away."""
    now = utcnow()
    await accepted_booking(url, charger_id, OTHER_RIDER, now, now + timedelta(minutes=30))
    await scan_and_start(driver, OTHER_RIDER, token)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("family", "plug_switched"), [("shelly", True), ("tasmota", False)])
async def test_killed_right_after_the_power_on(
    bots: Bots,
    database_url: str,
    broker: MosquittoServer,
    plugs: list,  # noqa: F811
    family: str,
    plug_switched: bool,
) -> None:
    telegram = bots.api
    driver, _, token, plug = await _ready(bots, database_url, broker, plugs, family)
    merchant_after = telegram.last_message_id(MERCHANT)

    plug.never_confirm = True  # the power-on reaches the plug, the answer waits ...
    card = await driver.say(RIDER, f"/start {token}", "press Start")
    after = telegram.last_message_id(RIDER)
    await driver.press(RIDER, RIDER, card, "Start charging")
    await until(lambda: _true(_power_commands(plug, True) == 1), 10)
    await bots.kill()  # ... and the bot dies before any answer
    plug.never_confirm = False
    if plug_switched:
        plug.set_relay(True)  # the relay switched; its report went to a dead process
    charges, _, _ = await rows(database_url)
    assert [s.status for s in charges] == [SessionStatus.STARTING]

    spawned = await bots.start()
    serving = asyncio.ensure_future(bots.serving(driver))
    if plug_switched:
        running = await driver.expect(RIDER, "Charging started", after, timeout=30)
        told = time.monotonic()
        assert any("Stop charging" in label for row in buttons(running) for label in row)
        await driver.expect(MERCHANT, "Charging started: booking", merchant_after, timeout=10)
        charges, orders, booked = await rows(database_url)
        assert [s.status for s in charges] == [SessionStatus.CHARGING] and not orders
        assert booked[0].status == BookingStatus.CHARGING
        assert plug.on  # on, and billed from the answer on: the rider can stop it
    else:
        # the message (its card is edited to say the same, in its own lane)
        failed = await driver.expect(RIDER, "not confirmed by the charger", after, timeout=30)
        told = time.monotonic()
        assert "nothing was billed" in plain(failed)
        charges, orders, booked = await rows(database_url)
        assert [s.status for s in charges] == [SessionStatus.FAILED] and not orders
        assert charges[0].started_at is None and charges[0].end_reason == "device_off"
        assert booked[0].status == BookingStatus.ACCEPTED and not plug.on
    ready = await serving
    assert told - spawned < 30, f"{told - spawned:.1f}s after the restart"
    assert told - ready < PROMPT, f"{told - ready:.1f}s after the new process served"
    assert _power_commands(plug, True) == 1  # nobody switched it on again

    if plug_switched:
        after = telegram.last_message_id(RIDER)
        await driver.press(RIDER, RIDER, running, "Stop charging")
        confirm = await driver.expect(RIDER, "Stop charging now?", after)
        await driver.press(RIDER, RIDER, confirm, "Yes, stop now")
        await driver.expect(RIDER, "Order #", after, timeout=10)
        assert not plug.on
    else:  # the booking stays usable: the same rider starts again at once
        await scan_and_start(driver, RIDER, token)
        assert plug.on


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("family", "plug_switched"), [("tasmota", True), ("shelly", False)])
async def test_killed_right_after_the_power_off(
    bots: Bots,
    database_url: str,
    broker: MosquittoServer,
    plugs: list,  # noqa: F811
    family: str,
    plug_switched: bool,
) -> None:
    telegram = bots.api
    driver, charger_id, token, plug = await _ready(bots, database_url, broker, plugs, family)
    started = await scan_and_start(driver, RIDER, token)
    assert plug.on

    after = telegram.last_message_id(RIDER)
    await driver.press(RIDER, RIDER, started, "Stop charging")
    confirm = await driver.expect(RIDER, "Stop charging now?", after)
    plug.never_confirm = True  # the power-off reaches the plug, the answer waits ...
    asked = utcnow()
    await driver.press(RIDER, RIDER, confirm, "Yes, stop now")
    await until(lambda: _true(_power_commands(plug, False) == 1), 10)
    await bots.kill()  # ... and the bot dies before any answer
    plug.never_confirm = False
    if plug_switched:
        plug.set_relay(False)  # it did switch off; its report went to a dead process
    charges, orders, _ = await rows(database_url)
    assert [s.status for s in charges] == [SessionStatus.STOPPING] and not orders

    spawned = await bots.start()
    serving = asyncio.ensure_future(bots.serving(driver))
    order = await driver.expect(RIDER, "Order #", after, timeout=40)
    told = time.monotonic()
    assert "stopped by the user" in plain(order)
    ready = await serving
    assert told - spawned < 30, f"{told - spawned:.1f}s after the restart"
    assert told - ready < PROMPT, f"{told - ready:.1f}s after the new process served"
    assert not plug.on
    # sent again only to the plug that had not switched off (on a loaded machine a
    # scheduler round may ask once more before its answer is in: harmless, it is off)
    if plug_switched:
        assert _power_commands(plug, False) == 1
    else:
        assert _power_commands(plug, False) >= 2
    charges, orders, booked = await rows(database_url)
    assert len(orders) == 1 and charges[0].power_off_confirmed is True
    assert abs((orders[0].ended_at - asked).total_seconds()) < 2  # billed to the Stop
    assert booked[0].status == BookingStatus.COMPLETED
    await driver.expect(GROUP, "Order #", 0, timeout=10)

    await _start_again_at_once(driver, database_url, charger_id, token)
    assert plug.on
    await telegram.wait_idle()
    assert [len(order_messages(telegram, c)) for c in (RIDER, MERCHANT, GROUP)] == [1, 1, 1]


async def _true(value: bool) -> bool:
    return value
