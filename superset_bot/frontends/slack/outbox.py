"""Every streaming Slack call goes through here: coalesced per message, paced to Slack's budgets.

Slack allows about one chat.postMessage per second per channel, and chat.update /
reactions.* share about 50 calls a minute for the whole workspace (Tier 3). Twenty busy
agents would exhaust that in seconds, so updates are not queued but *coalesced*: each
message keeps only its latest content, and one worker sends the oldest pending message
whenever the budget allows. Memory is bounded by the number of live messages, and API
calls by the budgets, whatever the agents print. A 429 pauses the budget for Retry-After;
server errors and outages are retried with backoff, keeping only the newest content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

# Slack's ok:false answers are refusals (a spent trigger, a missing message, bad arguments) that no
# retry can fix; only these error codes, HTTP 429/5xx and transport errors are worth another try.
TRANSIENT_ERRORS = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "team_added_to_org",
})


class TokenBucket:
    """`rate` tokens a second, up to `burst`; `pause_until` honours a Retry-After."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.updated = clock()
        self.paused_until = 0.0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def delay(self) -> float:
        """Seconds until a token is available (0 when one is)."""
        self._refill()
        wait = max(0.0, self.paused_until - self.clock())
        if self.tokens < 1:
            wait = max(wait, (1 - self.tokens) / self.rate)
        return wait

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.tokens = min(self.tokens, 0)

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:  # noqa: ASYNC110 - pacing, the wait is computed
            await asyncio.sleep(wait)
        self.take()


@dataclass
class _Pending:
    method: str  # "chat.update" | "reaction"
    channel: str
    ts: str
    args: dict[str, Any]
    attempts: int = 0
    not_before: float = 0.0
    urgent: bool = False


class Outbox:
    """The bot's single path to Slack for thread messages, status cards and reactions."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        post_rate: float = 1.0,
        post_burst: float = 3.0,
        tier3_per_minute: float = 50.0,
        tier3_burst: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        validate: Callable[[Sequence[dict[str, Any]]], list[str]] | None = None,
        post_patience: float = 600.0,
    ) -> None:
        self.client = client
        self.clock = clock
        # a thread reply (a review with its buttons, "Merged into ...") is not coalesced like an update:
        # given up on, it is lost, so posts keep retrying through an outage of up to this many seconds
        self.post_patience = post_patience
        self.post_rate, self.post_burst = post_rate, post_burst  # per channel, read when its bucket is made
        self._post_buckets: dict[str, TokenBucket] = {}
        self._post_locks: dict[str, asyncio.Lock] = {}
        self.tier3 = TokenBucket(tier3_per_minute / 60.0, tier3_burst, clock)
        self._pending: OrderedDict[tuple[str, str, str], _Pending] = OrderedDict()
        self._reactions: dict[tuple[str, str], str | None] = {}  # what is on the message now
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self.validate = validate
        self.stats: Counter[str] = Counter()

    # lifecycle

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="slack-outbox")

    async def stop(self, flush_timeout: float = 5.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await self.flush(flush_timeout)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every pending update has been delivered (or given up)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # posting: awaited, ordered per channel, retried

    async def post(self, channel: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
                   thread_ts: str | None = None, **extra: Any) -> str:
        """chat.postMessage paced per channel; returns the message ts. Raises SlackApiError if Slack refuses."""
        args: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False,
                                **extra}
        self._put_blocks(args, blocks)
        if thread_ts:
            args["thread_ts"] = thread_ts
        bucket = self._post_buckets.setdefault(channel, TokenBucket(self.post_rate, self.post_burst, self.clock))
        lock = self._post_locks.setdefault(channel, asyncio.Lock())
        async with lock:
            response = await self._call_with_retries("chat.postMessage", args, bucket, patience=self.post_patience)
        return str(response["ts"])

    async def call(self, method: str, **args: Any) -> dict[str, Any]:
        """Any other call (ephemeral, views, permalinks), retried on 429 and server errors."""
        self._put_blocks(args, args.pop("blocks", None), replacing=method == "chat.update")
        bucket = self.tier3 if method in ("chat.update", "chat.delete", "reactions.add", "reactions.remove") else None
        return await self._call_with_retries(method, args, bucket)

    async def _call_with_retries(self, method: str, args: dict[str, Any], bucket: TokenBucket | None,
                                 attempts: int = 6, patience: float = 0.0) -> dict[str, Any]:
        """Retries 429s, server errors and transport errors: `attempts` times, or for `patience` seconds."""
        delay = 1.0
        give_up_at = self.clock() + patience
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= attempts and self.clock() >= give_up_at
            if bucket is not None:
                await bucket.acquire()
            try:
                self.stats[method] += 1
                response = await self.client.api_call(method, json=args) if _json_method(method) \
                    else await self.client.api_call(method, params=args)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                if not _retryable(exc) or last:
                    raise
                retry_after = _retry_after(exc)
                if retry_after is not None:
                    self.stats["429"] += 1
                    if bucket is not None:
                        bucket.pause(retry_after)
                    else:
                        await asyncio.sleep(retry_after)
                    continue
            except Exception as exc:
                if last or not _is_transport_error(exc):
                    raise
                log.warning("slack %s failed (%s); retrying", method, exc)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 30.0)

    # coalesced: fire and forget

    def update(self, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
               *, urgent: bool = False) -> None:
        """Make the message show this content soon; newer content replaces older not yet sent.

        `urgent` (a state change, a closed review) goes ahead of pending progress updates, so a
        task's final state shows without waiting for every busy task's card in the shared budget.
        """
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            args["blocks"] = list(blocks)
        self._enqueue(_Pending("chat.update", channel, ts, args, urgent=urgent))

    def set_reaction(self, channel: str, ts: str, name: str | None) -> None:
        """Keep exactly one status reaction (`name`) on a message."""
        self._enqueue(_Pending("reaction", channel, ts, {"name": name}))

    def _enqueue(self, item: _Pending) -> None:
        key = (item.method, item.channel, item.ts)
        previous = self._pending.pop(key, None)
        if previous is not None:
            self.stats["coalesced"] += 1
            item.attempts, item.not_before = previous.attempts, previous.not_before
            item.urgent = item.urgent or previous.urgent
        self._pending[key] = item  # to the back: every message gets its turn
        if item.urgent:
            self._pending.move_to_end(key, last=False)
        self._idle.clear()
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = self.clock()
            ready = next((k for k, p in self._pending.items() if p.not_before <= now), None)
            if ready is None:
                soonest = min(p.not_before for p in self._pending.values())
                await self._sleep_or_wake(soonest - now)
                continue
            wait = self.tier3.delay()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            item = self._pending.pop(ready)
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                raise
            except SlackApiError as exc:
                retry_after = _retry_after(exc)
                if retry_after is not None:
                    self.stats["429"] += 1
                    self.tier3.pause(retry_after)
                    self._requeue(item, 0.0)
                elif not _retryable(exc):
                    self.stats["dropped"] += 1
                    log.warning("slack %s on %s/%s refused: %s", item.method, item.channel, item.ts, _error_of(exc))
                else:
                    self._requeue(item, min(60.0, 2.0 ** item.attempts))
            except Exception as exc:
                log.warning("slack %s on %s/%s failed: %s; will retry", item.method, item.channel, item.ts, exc)
                self._requeue(item, min(60.0, 2.0 ** item.attempts))

    async def _sleep_or_wake(self, seconds: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(0.01, seconds))

    def _requeue(self, item: _Pending, delay: float) -> None:
        key = (item.method, item.channel, item.ts)
        if key in self._pending:  # newer content arrived meanwhile: it wins
            return
        item.attempts += 1
        item.not_before = self.clock() + delay
        self._pending[key] = item

    async def _deliver(self, item: _Pending) -> None:
        if item.method == "chat.update":
            args = dict(item.args)
            self._put_blocks(args, args.pop("blocks", None), replacing=True)
            self.tier3.take()
            self.stats["chat.update"] += 1
            await self.client.api_call("chat.update", json=args)
            return
        key = (item.channel, item.ts)
        current = self._reactions.get(key)
        wanted = item.args["name"]
        if current == wanted:
            return
        if current:
            self.tier3.take()
            self.stats["reactions.remove"] += 1
            try:
                await self.client.api_call("reactions.remove", params={
                    "channel": item.channel, "timestamp": item.ts, "name": current})
            except SlackApiError as exc:
                if _error_of(exc) != "no_reaction":
                    raise
            self._reactions[key] = None
            if wanted:  # the add needs its own budget slot
                self._requeue(item, 0.0)
                item.attempts = 0
                return
        if wanted:
            self.tier3.take()
            self.stats["reactions.add"] += 1
            try:
                await self.client.api_call("reactions.add", params={
                    "channel": item.channel, "timestamp": item.ts, "name": wanted})
            except SlackApiError as exc:
                if _error_of(exc) != "already_reacted":
                    raise
            self._reactions[key] = wanted

    def _put_blocks(self, args: dict[str, Any], blocks: Sequence[dict[str, Any]] | None,
                    replacing: bool = False) -> None:
        """Blocks Slack would reject are left out (the text fallback still goes out) rather than lost.

        chat.update keeps a message's old blocks when none are given, and Slack shows blocks over
        text, so an update (`replacing`) sends an empty list instead: the new text is what people see.
        """
        if blocks is None:
            return
        if self.validate is not None:
            problems = self.validate(blocks)
            if problems:
                self.stats["invalid_blocks"] += 1
                log.error("leaving out blocks Slack would reject: %s", "; ".join(problems[:5]))
                if replacing:
                    args["blocks"] = []
                return
        args["blocks"] = list(blocks)


def _json_method(method: str) -> bool:
    return method.startswith(("chat.", "views."))


def _error_of(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def _retryable(exc: SlackApiError) -> bool:
    """HTTP 429 or 5xx, one of Slack's transient error codes, or an answer without an error code."""
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    error = _error_of(exc)
    return not error or error in TRANSIENT_ERRORS


def _retry_after(exc: SlackApiError) -> float | None:
    response = exc.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers = getattr(response, "headers", {}) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(1.0, float(raw))
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def _is_transport_error(exc: Exception) -> bool:
    import aiohttp

    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)
