"""The bare aiogram bot the bench compares with: an echo handler (and an answer to
every button press), polling the same local Bot API server over the same aiohttp
transport and HTTP, with aiogram's defaults.

    python -m bench.echoproc API_URL TOKEN [CALLS CHAT]

CALLS (default 1): the Bot API requests it makes per update, on average. Above 1,
each update also sends ``CALLS - 1`` messages (on average, a fraction carried over to
the next update) to CHAT, a chat the load does not wait on: figure 1's floor, the
echo making as many requests per update as ChargeShare does, says what those
requests alone cost in aiogram and aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import CallbackQuery, Message


class Extra:
    """The extra requests owed per update: ``calls - 1`` on average."""

    def __init__(self, calls: float, chat: int) -> None:
        self.per_update, self.chat, self.credit = calls - 1, chat, 0.0

    async def send(self, bot: Bot, text: str) -> None:
        self.credit += self.per_update
        while self.credit >= 1:
            self.credit -= 1
            await bot.send_message(self.chat, text)


async def echo(message: Message, bot: Bot, extra: Extra) -> None:
    await extra.send(bot, message.text or "ok")
    await message.answer(message.text or "ok")


async def pressed(query: CallbackQuery, bot: Bot, extra: Extra) -> None:
    await extra.send(bot, query.data or "ok")
    await query.answer("ok")


async def main(url: str, token: str, calls: float = 1.0, chat: int = 0) -> None:
    bot = Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    dp = Dispatcher(extra=Extra(calls, chat))
    dp.message.register(echo)
    dp.callback_query.register(pressed)
    await dp.start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    calls, chat = (float(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (1.0, 0)
    asyncio.run(main(sys.argv[1], sys.argv[2], calls, chat))
