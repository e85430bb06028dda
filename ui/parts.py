"""The parts of a notification: each Bot API call of a message is a part.

A message owed may take several calls (a text and a location, a photo and the
card, a label per charger). Renderers hand each call to a ``Part`` under a key
that stays the same when the message is rendered again, so that the outbox
sender can record each part as it is settled and a retry sends only the parts
still owed, never one twice.
"""

from collections.abc import Awaitable, Callable
from typing import Protocol

Send = Callable[[], Awaitable[object]]


class Part(Protocol):
    async def __call__(self, key: str, send: Send) -> None:
        """Send one part (``send`` makes the call), unless it was settled before."""


async def send_now(key: str, send: Send) -> None:
    """Outside the outbox (a handler answering a press): send at once, errors raise."""
    await send()
