"""bot.background.Loop: a wake() is never lost (issue #17: an order's messages waited
for the outbox sender's idle poll, up to a second, when the order was committed while
the sender's previous step was looking at the outbox and found nothing)."""

from __future__ import annotations

import asyncio

from bot.background import Loop


async def test_a_wake_during_an_idle_step_runs_the_step_again_at_once() -> None:
    steps = 0
    second = asyncio.Event()
    loop: Loop

    async def step() -> bool:
        nonlocal steps
        steps += 1
        if steps == 1:
            # something is committed while this step's query has already run: it
            # finds nothing, and the commit wakes the loop meanwhile
            loop.wake()
            return False
        second.set()
        return False

    loop = Loop("test", step, idle=3600.0)  # only a wake can bring the second step
    loop.start()
    try:
        await asyncio.wait_for(second.wait(), 10)
    finally:
        await loop.stop()
    assert steps >= 2


async def test_an_idle_loop_waits_for_a_wake() -> None:
    steps = 0
    ran = asyncio.Event()

    async def step() -> bool:
        nonlocal steps
        steps += 1
        ran.set()
        return False

    loop = Loop("test", step, idle=3600.0)
    loop.start()
    try:
        await asyncio.wait_for(ran.wait(), 10)
        ran.clear()
        for _ in range(20):  # the loop has had every chance to run again
            await asyncio.sleep(0)
        assert steps == 1  # idle: it does not spin
        loop.wake()
        await asyncio.wait_for(ran.wait(), 10)
        assert steps == 2
    finally:
        await loop.stop()
