"""Background delivery of the outbox: retries network errors and 429s, gives up
on messages Telegram will never accept, and sends each message once."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.notifications import render
from bot.settings import Settings
from models import OutboxMessage
from services import outbox
from services.tx import transaction

log = logging.getLogger(__name__)


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        idle_poll: float = 1.0,
        rate_per_second: float = 25.0,
    ) -> None:
        self._bot = bot
        self._sessions = sessions
        self._settings = settings
        self._idle_poll = idle_poll
        # stay under Telegram's ~30 messages/s per bot by pacing, not by hoping
        self._interval = 1.0 / rate_per_second
        self._last_send = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something was committed: look at the outbox now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        while True:
            try:
                delivered = await self.drain_once()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("outbox: drain failed")
                delivered = 0
            if delivered:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_poll)

    async def drain_once(self) -> int:
        """Deliver what is due now; returns how many rows were handled."""
        batch = await outbox.claim_due(self._sessions)
        for message in batch:
            await self._deliver(message)
        return len(batch)

    async def _deliver(self, message: OutboxMessage) -> None:
        await self._pace()
        async with self._sessions() as session:
            outcome = await self._render(session, message)
            async with transaction(session):
                await outcome(session)

    async def _render(
        self, session: AsyncSession, message: OutboxMessage
    ) -> Callable[[AsyncSession], Awaitable[None]]:
        """Send one message; return how to record the result."""
        try:
            await render(self._bot, session, self._settings, message)
        except TelegramRetryAfter as error:
            log.warning("outbox %s: flood control, retry in %ss", message.id, error.retry_after)
            return partial(
                outbox.mark_retry,
                message=message,
                error=str(error),
                delay_seconds=error.retry_after,
            )
        except (TelegramNetworkError, TelegramServerError, OSError) as error:
            log.warning("outbox %s: %s; will retry", message.id, error)
            return partial(outbox.mark_retry, message=message, error=str(error))
        except (TelegramForbiddenError, TelegramBadRequest) as error:
            # blocked by the user, chat gone, bad content: retrying cannot help
            log.error("outbox %s (%s) undeliverable: %s", message.id, message.kind, error)
            return partial(outbox.mark_failed, message_id=message.id, error=str(error))
        except Exception as error:
            log.exception("outbox %s (%s) failed", message.id, message.kind)
            return partial(outbox.mark_retry, message=message, error=repr(error))
        return partial(outbox.mark_sent, message_id=message.id)

    async def _pace(self) -> None:
        wait = self._last_send + self._interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_send = time.monotonic()
