"""Issue #12, item 7: button data that no button of ours carries (an id over 64
bits, a negative one, an unknown action, kind, reason or language) gets the same
"this button is out of date" alert as any stale button, and changes nothing."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Booking, FsmRecord, OutboxMessage, User
from models.db import create_engine, create_session_factory
from tests.botapi import FakeBotAPI
from tests.harness import ADMINS, GROUP, BotHarness, start_api

ANN = 3101
STALE = "This button is out of date. Nothing was changed."
HUGE = str(2**64 + 5)  # over 64 bits: no row id can be this

PRIVATE = [
    f"bk:{HUGE}",
    "bk:-1",
    f"bg:accept:{HUGE}:",
    f"bg:cancel:{HUGE}:",
    "bg:reason:1:teleported",
    "bg:launch:1:",
    f"ch:start:{HUGE}",
    f"ch:stop_yes:{HUGE}",
    "ch:explode:1",
    "fd:page:0:hovercraft:0:0",
    "fd:page:0::maybe:0",
    f"fd:card:0::0:{HUGE}",
    f"fd:page:{HUGE}::0:0",
    f"ls:pause:{HUGE}",
    "ls:delete:1",
    f"qr:renew_yes:{HUGE}:abc",
    "qr:renew_yes:1:<script>",
    "lang:fr",
    f"wz:field:{HUGE}",
    "wz:nuke:-1",
    "nonsense",
    "bk",
    "bk:1:2:3",
]
GROUP_DATA = [
    f"rv:approve:{HUGE}:",
    "rv:reason:1:no_reason_we_know",
    "rv:approve:-7:",
    "rv:obliterate:1:",
]


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api((ANN, "Ann", "en"))
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    async with create_session_factory(engine)() as db:
        counts = {
            model.__name__: await db.scalar(select(func.count()).select_from(model)) or 0
            for model in (AuditEntry, Booking, FsmRecord, OutboxMessage, User)
        }
    await engine.dispose()
    return counts


async def test_forged_buttons_are_stale_buttons(bot: BotHarness, database_url: str) -> None:
    api = bot.api
    message = await bot.say(ANN, "/help", "ChargeShare")
    card = await bot.say_in_group(ADMINS[0], "/pending", "Nothing is waiting")
    before = await _counts(database_url)
    for chat, presser, target, forged in [
        *((ANN, ANN, message, data) for data in PRIVATE),
        *((GROUP, ADMINS[0], card, data) for data in GROUP_DATA),
    ]:
        query = api.press(chat, presser, target["message_id"], forged)
        answer = await api.wait_for_callback_answer(query)
        assert answer == {"text": STALE, "show_alert": True}, (forged, answer)
    assert await _counts(database_url) == before
    assert len(api.bot_messages(ANN)) == 1 and len(api.bot_messages(GROUP)) == 1
    await bot.say(ANN, "/help", "ChargeShare")  # and the person goes on as before
