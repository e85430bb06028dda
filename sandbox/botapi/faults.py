"""Fault injection: make the next calls of a method fail as Telegram would."""

from __future__ import annotations

from typing import Any

from .protocol import ApiError, JsonDict
from .records import Failure
from .world import World


class Faults(World):
    """``fail_next``: scripted errors (429 flood waits, 5xx, 403 ...) for chosen calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures: dict[str, list[Failure]] = {}

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        description: str = "Too Many Requests: retry after 1",
        retry_after: int | None = 1,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (case-insensitive) fail;
        with ``chat_id``, only the calls to that chat.

        The failure is answered like Telegram does (HTTP status = ``error_code``,
        ``parameters.retry_after`` when given), without executing the method.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        failure = Failure(error_code, description, retry_after, times, chat_id)
        self._failures.setdefault(method.lower(), []).append(failure)

    def _take_failure(self, method: str, params: JsonDict) -> ApiError | None:
        queue = self._failures.get(method.lower(), [])
        chat = params.get("chat_id")
        failure = next((f for f in queue if f.chat_id is None or str(f.chat_id) == str(chat)), None)
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.remove(failure)
        return ApiError(failure.error_code, failure.description, failure.retry_after)
