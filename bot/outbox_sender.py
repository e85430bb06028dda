"""Background delivery of the outbox: retries network errors and 429s, gives up
on messages Telegram will never accept, and sends each message once: a message
of several parts part by part, each part once, a refused part not holding back
the others."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.background import Loop
from bot.settings import Settings, ui_config
from models import OutboxMessage
from services import outbox
from services.outbox import Notification
from services.tx import Db, OpenDb, transaction
from ui.notifications import render
from ui.parts import Send

log = logging.getLogger(__name__)


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        open_db: OpenDb,
        settings: Settings,
        *,
        idle_poll: float = 1.0,
        rate_per_second: float = 25.0,
        burst: int = 5,
    ) -> None:
        self._bot = bot
        self._open_db = open_db
        self._config = ui_config(settings)
        # stay under Telegram's ~30 messages/s per bot by pacing, not by hoping: a token
        # bucket, so the few messages one change owes (an order to the rider, the
        # merchant and the group) leave at once, and a long queue at the rate (in any
        # second at most ``burst`` + ``rate_per_second``)
        self.bucket = TokenBucket(rate_per_second, burst)
        # Two lanes share the bucket: messages to people, and card edits (cosmetic),
        # which take a token only while ``EDITS_LEAVE`` are left, so a message owed to
        # someone never queues behind a run of edits and finds tokens waiting.
        # per lane: an edit waiting for a token holds no slot of a message's
        self._at_once = {
            False: asyncio.Semaphore(self.AT_ONCE),
            True: asyncio.Semaphore(self.EDITS_AT_ONCE),
        }
        self._messages = Loop("outbox-sender", partial(self._step, False), idle_poll)
        self._edits = Loop("outbox-card-edits", partial(self._step, True), idle_poll)

    EDITS_LEAVE = 3
    # messages being sent at once: an order's three copies (and one edit); each holds
    # a database connection while it is sent
    AT_ONCE, EDITS_AT_ONCE = 3, 1

    def start(self) -> None:
        self._messages.start()
        self._edits.start()

    async def stop(self) -> None:
        await self._messages.stop()
        await self._edits.stop()

    def wake(self) -> None:
        """Something was committed: look at the outbox now rather than at the next poll."""
        self._messages.wake()
        self._edits.wake()

    async def _step(self, edits: bool) -> bool:
        return await self.drain_once(edits=edits) > 0

    async def drain_once(self, *, edits: bool | None = None) -> int:
        """Deliver what is due now (``edits``: card edits only, or none of them);
        returns how many rows were handled.

        The batch's chats are served side by side (an order's three copies leave
        in one round trip, not three), each chat's messages in their order.
        Flood control (429) holds the whole bot, not one chat: what the batch has
        not yet sent goes back for ``retry_after`` too, and no attempt is counted.
        """
        batch = await outbox.claim_due(self._open_db, edits=edits)
        by_chat: dict[int, list[OutboxMessage]] = {}
        for message in batch:
            by_chat.setdefault(message.chat_id, []).append(message)
        flood: list[float] = []

        async def serve(messages: list[OutboxMessage]) -> None:
            for index, message in enumerate(messages):
                if flood:  # another chat met flood control: these wait it out too
                    return await self._hold(messages[index:], flood[0])
                async with self._at_once[outbox.is_edit(message)]:
                    retry_after = await self._deliver(message)
                if retry_after is not None:
                    flood.append(retry_after)
                    return await self._hold(messages[index + 1 :], retry_after)

        # every chat finishes what it began (a send cut off before its record
        # would be sent again), then the first error, if any, goes up
        results = await asyncio.gather(
            *(serve(messages) for messages in by_chat.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(batch)

    async def _hold(self, messages: list[OutboxMessage], retry_after: float) -> None:
        if not messages:
            return
        async with self._open_db() as db, transaction(db):
            for held in messages:
                await outbox.mark_retry(db, held, "flood control", retry_after, count_attempt=False)

    async def _deliver(self, message: OutboxMessage) -> float | None:
        """Send one message part by part and record the result; returns a
        flood-control wait."""
        async with self._open_db() as db:
            parts = _Parts(self, db, message)
            try:
                outcome, retry_after = await self._render(db, message, parts)
                # the last part's record and the message's, one transaction
                async with transaction(db):
                    await parts.record(db)
                    await outcome(db)
            except ClaimLost:  # our lease ran out and another instance took it
                log.warning(
                    "outbox %s: claim lost (another sender took the row); left to it", message.id
                )
                return None
        return retry_after

    async def _render(
        self, db: Db, message: OutboxMessage, parts: "_Parts"
    ) -> tuple[Callable[[Db], Awaitable[None]], float | None]:
        """Send the parts still owed; return how to record the result.

        A part Telegram refuses (400) is settled as failed by ``parts`` and the
        others go on; an error here ends this attempt, and the parts already
        settled stay settled, so the retry sends only the rest.
        """
        try:
            await render(self._bot, db, self._config, Notification.of(message), parts)
        except TelegramRetryAfter as error:
            log.warning("outbox %s: flood control, retry in %ss", message.id, error.retry_after)
            return partial(
                outbox.mark_retry,
                message=message,
                error=str(error),
                delay_seconds=error.retry_after,
                count_attempt=False,
            ), float(error.retry_after)
        except TelegramMigrateToChat as error:
            # the group became a supergroup: nothing reaches the old id any more
            log.error(
                "outbox %s: chat %s is now %s; update the setting (e.g. MODERATION_CHAT_ID)",
                message.id,
                message.chat_id,
                error.migrate_to_chat_id,
            )
            return partial(
                outbox.mark_retry,
                message=message,
                error=str(error),
                delay_seconds=600,
                count_attempt=False,
            ), None
        except (TelegramNetworkError, TelegramServerError, OSError) as error:
            log.warning("outbox %s: %s; will retry", message.id, error)
            return partial(outbox.mark_retry, message=message, error=str(error)), None
        except (TelegramForbiddenError, TelegramBadRequest) as error:
            # blocked by the user, chat gone, bad content: retrying cannot help
            log.error("outbox %s (%s) undeliverable: %s", message.id, message.kind, error)
            return partial(outbox.mark_failed, message_id=message.id, error=str(error)), None
        except ClaimLost:
            raise
        except Exception as error:
            log.exception("outbox %s (%s) failed", message.id, message.kind)
            return partial(outbox.mark_retry, message=message, error=repr(error)), None
        refused = parts.refused()
        if refused is not None and outbox.PART_SENT not in parts.done().values():
            return partial(outbox.mark_failed, message_id=message.id, error=refused), None
        return partial(outbox.mark_sent, message_id=message.id, error=refused), None


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept: in any second at most
    ``burst`` + ``rate`` are taken."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate, self._burst = rate, float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._filled_at = float(burst), clock()

    async def take(self, leave: int = 0) -> None:
        """Take a token; ``leave``: only while that many more stay in the bucket."""
        self._refill()
        while self._tokens < 1 + leave - 1e-9:
            await self._sleep((1 + leave - self._tokens) / self._rate)
            self._refill()
        self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now


class ClaimLost(Exception):
    """Our claim on a row ran out and another sender took it: send nothing more."""


class _Parts:
    """The parts of one outbox row (ui/parts.py): each sent at most once, in
    its own turn of the pacing, and recorded right after Telegram answered: before
    the next part is sent, or, for the last, with the message's own record."""

    def __init__(self, sender: OutboxSender, db: Db, message: OutboxMessage):
        self._sender = sender
        self._db = db
        self._message = message
        self._unrecorded: tuple[str, str] | None = None  # (key, outcome)

    async def record(self, db: Db) -> None:
        """Record the part settled last, if not yet (in the caller's transaction)."""
        if self._unrecorded is not None:
            key, outcome = self._unrecorded
            if not await outbox.mark_part(db, self._message, key, outcome):
                raise ClaimLost
            self._unrecorded = None

    def done(self) -> dict[str, str]:
        """The settled parts, the last one's record included."""
        done = dict(self._message.parts_done)
        if self._unrecorded is not None:
            done[self._unrecorded[0]] = self._unrecorded[1]
        return done

    async def __call__(self, key: str, send: Send) -> None:
        message = self._message
        if key in message.parts_done:  # settled on an earlier attempt
            return
        if self._unrecorded is not None:
            async with transaction(self._db):
                await self.record(self._db)
        await self._sender.bucket.take(OutboxSender.EDITS_LEAVE if outbox.is_edit(message) else 0)
        if not outbox.claim_fresh(message):
            async with transaction(self._db):
                if not await outbox.renew_claim(self._db, message):
                    raise ClaimLost
        try:
            await send()
        except TelegramBadRequest as error:
            # this part can never be sent (bad content): give it up, not the others
            log.error("outbox %s (%s) part %s refused: %s", message.id, message.kind, key, error)
            outcome = f"{outbox.PART_FAILED}{error}"
        else:
            outcome = outbox.PART_SENT
        self._unrecorded = (key, outcome)

    def refused(self) -> str | None:
        """Which parts were given up and why, if any were."""
        failed = [
            f"{key}: {outcome.removeprefix(outbox.PART_FAILED)}"
            for key, outcome in self.done().items()
            if outcome != outbox.PART_SENT
        ]
        return "; ".join(failed) or None
