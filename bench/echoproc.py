"""The bare aiogram bot the bench compares with: an echo handler (and an answer to
every button press), polling the same local Bot API server over the same aiohttp
transport and HTTP, with aiogram's defaults.

    python -m bench.echoproc API_URL TOKEN
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


async def echo(message: Message) -> None:
    await message.answer(message.text or "ok")


async def pressed(query: CallbackQuery) -> None:
    await query.answer("ok")


async def main(url: str, token: str) -> None:
    bot = Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    dp = Dispatcher()
    dp.message.register(echo)
    dp.callback_query.register(pressed)
    await dp.start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
