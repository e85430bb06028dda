"""`python -m bot` as a real process: clear configuration errors, and a start
that migrates the database and answers through the local Bot API server."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.botapi import FakeBotAPI, plain
from tests.harness import GROUP

ROOT = Path(__file__).resolve().parent.parent


def _env(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"BOT_TOKEN", "DATABASE_URL", "ADMIN_IDS", "MODERATION_CHAT_ID", "TELEGRAM_API_URL"}
    }
    env.update(values)
    return env


async def _run(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


@pytest.mark.parametrize(
    ("values", "named"),
    [
        # (no BOT_TOKEN at all starts the offline sandbox: tests/test_sandbox.py)
        ({"BOT_TOKEN": "1:x", "MODERATION_CHAT_ID": "-1", "ADMIN_IDS": "12,abc"}, "ADMIN_IDS"),
        (
            {"BOT_TOKEN": "1:x", "MODERATION_CHAT_ID": "-1", "DATABASE_URL": "mysql://x"},
            "DATABASE_URL",
        ),
        ({"BOT_TOKEN": "1:x", "MODERATION_CHAT_ID": "group"}, "MODERATION_CHAT_ID"),
        # the last resort must not end a start that still waits for its plug
        (
            {"BOT_TOKEN": "1:x", "MODERATION_CHAT_ID": "-1", "STOP_GIVE_UP_SECONDS": "8"},
            "STOP_GIVE_UP_SECONDS must be longer than DEVICE_CONFIRM_SECONDS (10)",
        ),
    ],
)
async def test_bad_setting_stops_with_one_clear_line(
    values: dict[str, str], named: str, tmp_path: Path
) -> None:
    code, output = await _run(_env(**values), tmp_path)  # tmp_path: no .env is read
    assert code != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert named in lines[0] and "Traceback" not in output


async def test_process_migrates_and_answers(tmp_path: Path) -> None:
    api = FakeBotAPI()
    await api.start()
    api.add_user(7, "Pat")
    env = _env(
        BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.url,
        MODERATION_CHAT_ID=str(GROUP),
        ADMIN_IDS="1",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/data/bot.db",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await api.wait_for_poller(timeout=30)
        api.send_text(7, 7, "/start")
        reply = await api.wait_for_message(7, timeout=10)
        assert "ChargeShare" in plain(reply)
        assert api.commands({"type": "all_private_chats"}, "zh"), "menus in both languages"
        assert (tmp_path / "data" / "bot.db").exists()
    finally:
        process.send_signal(signal.SIGINT)  # polling stops cleanly on SIGINT
        await asyncio.wait_for(process.wait(), 20)
        await api.stop()
