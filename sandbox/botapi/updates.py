"""Updates reach the bot: ``getUpdates`` (long polling) or webhook delivery.

With a webhook set (``setWebhook``), each update is POSTed to its URL as a JSON
body, one at a time and in order, with ``X-Telegram-Bot-Api-Secret-Token`` when a
``secret_token`` was given. A non-2xx answer or a connection error is retried with
exponential backoff (``webhook_backoff``) and shows in ``getWebhookInfo``'s
``last_error_*``; ``getUpdates`` answers 409 meanwhile, ``deleteWebhook`` switches
back to polling. A 2xx answer whose body is a Bot API call (``{"method": ...}``,
JSON or form, as aiogram's "reply into webhook" sends) is executed, like Telegram
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import aiohttp

from .protocol import ApiError, JsonDict, bad, decode_value, int_param
from .records import Upload
from .world import World


class Updates(World):
    """``getUpdates``, ``setWebhook``/``deleteWebhook``/``getWebhookInfo`` and the
    helpers that wait for the bot to poll or to be done."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._delivered_upto = 0  # highest update_id handed to the bot
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._active_polls = 0  # getUpdates requests currently being served
        self._webhook: JsonDict = {}
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_error: JsonDict = {}
        #: Webhook retry delays: (first, longest) seconds, doubling after each failure.
        self.webhook_backoff: tuple[float, float] = (0.05, 5.0)
        #: How long one webhook POST may take before it counts as failed.
        self.webhook_timeout: float = 60.0
        #: Every webhook POST attempt: (update_id, HTTP status or None on a
        #: connection error, seconds waited before the attempt).
        self.webhook_attempts: list[tuple[int, int | None, float]] = []

    @property
    def pending_updates(self) -> int:
        """How many queued updates have not been returned by ``getUpdates`` yet."""
        return sum(1 for update in self._updates if update["update_id"] > self._delivered_upto)

    def update_count(self) -> int:
        """Same as :attr:`pending_updates`, as a method."""
        return self.pending_updates

    async def wait_for_poller(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot is polling (a ``getUpdates`` request is being served)."""
        deadline = time.monotonic() + timeout
        while self._active_polls == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the bot did not call getUpdates within {timeout}s")
            await self._wait_change(remaining)

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every queued update was fetched and the bot has been quiet.

        "Quiet" means no API request in flight and none started or finished for
        ``quiet`` seconds (long polls do not count). Raises AssertionError on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            busy = self.pending_updates > 0 or self._inflight > 0
            idle_for = now - self._last_activity
            if not busy and idle_for >= quiet:
                return
            if now >= deadline:
                raise AssertionError(
                    f"not idle after {timeout}s: {self.pending_updates} updates never fetched "
                    f"(is polling running?), {self._inflight} requests in flight"
                )
            wait = (deadline - now) if busy else (quiet - idle_for)
            await self._wait_change(max(0.001, min(wait, deadline - now)))

    # ------------------------------------------------------------------ Bot API methods

    async def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        if self._webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int_param(params, "offset")
        limit = min(100, max(1, int_param(params, "limit", 100) or 100))
        timeout = max(0, int_param(params, "timeout", 0) or 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):  # remembered across calls, like Telegram
            self._allowed_updates = frozenset(allowed) or None
        if offset:
            # A positive offset confirms every earlier update; a negative one keeps
            # only the last -offset updates.
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            else:
                self._updates = self._updates[offset:]

        # A newer getUpdates terminates an older one, like Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._active_polls += 1
        self._notify()
        try:
            batch = await self._poll(generation, limit, timeout)
        finally:
            self._active_polls -= 1
        if batch:
            self._delivered_upto = max(self._delivered_upto, batch[-1]["update_id"])
            self._touch()
        return copy.deepcopy(batch)

    async def _poll(self, generation: int, limit: int, seconds: int) -> list[JsonDict]:
        """Wait up to ``seconds`` for deliverable updates (the long poll)."""
        deadline = time.monotonic() + seconds
        while True:
            if self._webhook.get("url"):
                raise ApiError(
                    409,
                    "Conflict: terminated by setWebhook request; "
                    "use deleteWebhook to delete the webhook first",
                )
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if self._allowed_updates is not None:
                # Updates of types the bot did not ask for are dropped, not kept.
                self._updates = [u for u in self._updates if self._is_allowed(u)]
            batch = self._updates[:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return batch
            await self._wait_change(remaining)

    def _is_allowed(self, update: JsonDict) -> bool:
        assert self._allowed_updates is not None
        return any(key in self._allowed_updates for key in update if key != "update_id")

    def _set_webhook(self, params: JsonDict) -> bool:
        url = str(params.get("url") or "")
        if not url:  # Telegram: an empty URL removes the webhook
            return self._delete_webhook(params)
        if not url.startswith(("http://", "https://")):
            # Telegram wants HTTPS; a local server also takes http:// for local bots
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad("secret token contains unallowed characters")
        self._webhook = {key: value for key, value in params.items() if key != "certificate"}
        self._webhook_error = {}
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        if params.get("drop_pending_updates"):
            self._drop_pending_updates()
        self._poll_generation += 1  # a running long poll ends with 409
        self._touch()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        return True

    def _delete_webhook(self, params: JsonDict) -> bool:
        self._webhook = {}
        self._webhook_error = {}
        if params.get("drop_pending_updates"):
            self._drop_pending_updates()
        self._touch()  # the delivery task sees no URL and ends
        return True

    async def _stop_webhook_delivery(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver_webhooks(self) -> None:
        """POST queued updates to the webhook, in order, until the webhook is removed."""
        first, longest = self.webhook_backoff
        delay = 0.0
        async with aiohttp.ClientSession() as http:
            while not self._closing:
                url = str(self._webhook.get("url") or "")
                if not url:
                    return
                if self._allowed_updates is not None:
                    self._updates = [u for u in self._updates if self._is_allowed(u)]
                if not self._updates:
                    delay = 0.0
                    await self._wait_change(30)
                    continue
                update = self._updates[0]
                if delay:
                    await asyncio.sleep(delay)
                    if self._webhook.get("url") != url or not self._updates:
                        continue  # changed meanwhile: start over
                    update = self._updates[0]
                _status, error = await self._post_update(http, url, update, delay)
                if error is None:
                    delay = 0.0
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                    self._delivered_upto = max(self._delivered_upto, update["update_id"])
                    self._touch()
                else:
                    self._webhook_error = {
                        "last_error_date": int(time.time()),
                        "last_error_message": error,
                    }
                    delay = min(longest, max(first, delay * 2))

    async def _post_update(
        self, http: aiohttp.ClientSession, url: str, update: JsonDict, waited: float
    ) -> tuple[int | None, str | None]:
        """One delivery attempt: (HTTP status, error message or None on success)."""
        headers = {"Content-Type": "application/json"}
        if secret := self._webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(secret)
        self._inflight += 1
        self._touch()
        status: int | None = None
        try:
            async with http.post(
                url,
                data=json.dumps(update, ensure_ascii=False),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    return status, f"Wrong response from the webhook: {status} {response.reason}"
                await self._run_webhook_reply(response)
                return status, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"Connection failed: {type(exc).__name__}: {exc}".rstrip(": ")
        finally:
            self.webhook_attempts.append((update["update_id"], status, waited))
            self._inflight -= 1
            self._touch()

    async def _run_webhook_reply(self, response: aiohttp.ClientResponse) -> None:
        """Execute a Bot API call sent back as the webhook's answer (errors are dropped)."""
        params: JsonDict = {}
        uploads: dict[str, Upload] = {}
        if response.content_type == "application/json":
            with contextlib.suppress(ValueError):
                body = await response.json(content_type=None)
                if isinstance(body, dict):
                    params.update(body)
        elif response.content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader(response.headers, response.content)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                    continue
                if part.filename:
                    data = bytes(await part.read(decode=True))
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    uploads[part.name] = Upload(part.filename, content_type, data)
                else:
                    params[part.name] = decode_value(part.name, await part.text())
        elif response.content_type == "application/x-www-form-urlencoded":
            for key, value in parse_qsl(await response.text()):
                params[key] = decode_value(key, value)
        method = str(params.pop("method", "") or "")
        if not method:
            return
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                part_name = value.removeprefix("attach://")
                if part_name in uploads:
                    params[key] = uploads.pop(part_name)
        params.update(uploads)
        name, handler = self._methods.get(method.lower(), (method, None))
        if handler is None or name in ("getUpdates", "setWebhook", "deleteWebhook"):
            return
        self.requests.append((name, params))
        with contextlib.suppress(ApiError):
            result = handler(params)
            if inspect.isawaitable(result):
                await result

    def _drop_pending_updates(self) -> None:
        self._delivered_upto = self._last_update_id
        self._updates.clear()
        self._touch()

    def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {
            "url": str(self._webhook.get("url", "")),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
            **self._webhook_error,
        }
        if self._webhook.get("max_connections"):
            info["max_connections"] = int(self._webhook["max_connections"])
        if allowed := self._webhook.get("allowed_updates"):
            info["allowed_updates"] = allowed
        return info
