"""End-to-end harness: the real bot (App: migrations, Dispatcher, outbox sender,
aiogram's real HTTP session) polling the local Bot API server in tests/botapi."""

import asyncio
import contextlib
from typing import Any

from bot.app import App
from bot.settings import Settings, load_settings
from tests.botapi import FakeBotAPI, buttons, plain

GROUP = -1001234567890
ADMINS = (901, 902)

JsonDict = dict[str, Any]


async def start_api(*users: tuple[int, str, str]) -> FakeBotAPI:
    """A started local Bot API server with the admins, the moderation group and
    the given (id, first name, language) users."""
    api = FakeBotAPI()
    await api.start()
    for user_id, name, language in users:
        api.add_user(user_id, name, language_code=language)
    for admin in ADMINS:
        api.add_user(admin, f"Admin{admin}", language_code="en")
    api.add_group(GROUP, "ChargeShare moderation")
    return api


class BotHarness:
    def __init__(self, api: FakeBotAPI, database_url: str, **settings: Any) -> None:
        self.api = api
        self.settings: Settings = load_settings(
            bot_token=api.token,
            telegram_api_url=api.url,
            database_url=database_url,
            moderation_chat_id=GROUP,
            admin_ids=",".join(str(a) for a in ADMINS),
            _env_file=None,
            **settings,
        )
        self.app: App | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.app = App(self.settings)
        self._task = asyncio.create_task(self.app.run_polling(handle_signals=False))
        poller = asyncio.ensure_future(self.api.wait_for_poller(timeout=20))
        await asyncio.wait({poller, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():  # start-up failed: show why instead of a time-out
            poller.cancel()
            self._task.result()
        await poller

    async def stop(self) -> None:
        if self.app is None or self._task is None:
            return
        with contextlib.suppress(RuntimeError):  # polling may already be stopped
            await asyncio.wait_for(self.app.dispatcher.stop_polling(), 20)
        await asyncio.wait_for(self._task, 20)
        self.app = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # -- acting and expecting ---------------------------------------------

    async def expect(
        self,
        chat_id: int,
        contains: str,
        after: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JsonDict:
        """The first bot message (new or edited after ``after``) whose text, or one of
        whose inline buttons, has ``contains``."""

        def matches(message: JsonDict) -> bool:
            labels = (label for row in buttons(message) for label in row)
            return contains in plain(message) or any(contains in label for label in labels)

        return await self.api.wait_for_message(chat_id, matches, after=after, timeout=timeout)

    async def say(self, user_id: int, text: str, expect: str) -> JsonDict:
        """A private message, then the bot's answer that contains ``expect``."""
        after = self.api.last_message_id(user_id)
        self.api.send_text(user_id, user_id, text)
        return await self.expect(user_id, expect, after)

    async def say_in_group(self, user_id: int, text: str, expect: str) -> JsonDict:
        after = self.api.last_message_id(GROUP)
        self.api.send_text(GROUP, user_id, text)
        return await self.expect(GROUP, expect, after)

    async def press(self, chat_id: int, user_id: int, message: JsonDict, button: str) -> JsonDict:
        """Press an inline button; returns the callback answer (text, show_alert)."""
        query_id = self.api.press_button(chat_id, user_id, message["message_id"], button)
        return await self.api.wait_for_callback_answer(query_id)


def current(api: FakeBotAPI, chat_id: int, message_id: int) -> JsonDict:
    """A message of the chat as it is now (edits included)."""
    return next(m for m in api.history(chat_id) if m["message_id"] == message_id)
