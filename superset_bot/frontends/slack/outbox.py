"""The bot's one path to Slack for posts, updates and reactions: paced, coalesced, never doubled.

(`call` takes any other method, paced by its budget and retried; file uploads use the client
directly.) Each method has its own budget (budgets.py); posts are awaited and never doubled
(posts.py); which failures are retried, and how the SDK's client must be built (retries.py).

Updates and reactions are fire and forget, and *coalesced*: each message keeps only its latest
content (and the reaction it should carry), and a worker sends, whenever a budget allows, the
oldest pending item whose method has a token, so reactions never wait behind a backlog of
chat.update or the other way round; one call per method is in flight at a time, so a slow or
rate-limited method holds up only itself. Urgent updates (a task's final state) go to the front,
and progress updates leave a reserve of chat.update tokens untouched, so a final state finds a
token at once however many busy tasks keep the queue full. Memory is bounded by the number of live
messages and API calls by the budgets, whatever the agents print. Server errors and outages are
retried with backoff, keeping only the newest content.

Reactions. The outbox remembers which status reaction each message carries; `seed_reactions`
restores that after a restart, and `on_reaction` hears every change Slack confirmed, to persist it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, overload

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.frontends.slack.budgets import Budgets, TokenBucket
from superset_bot.frontends.slack.posts import POST_EVENT_TYPE, Posts
from superset_bot.frontends.slack.retries import (
    PostSafeConnectionErrorRetryHandler,
    call_with_retries,
    describe,
    error_of,
    retry_after,
    retryable,
    slack_retry_handlers,
)

# the names importers take from here, though they live in the modules above
__all__ = [
    "POST_EVENT_TYPE", "Outbox", "PostSafeConnectionErrorRetryHandler", "ReactionCallback", "TokenBucket",
    "slack_retry_handlers",
]

log = logging.getLogger(__name__)

ReactionCallback = Callable[[str, str, str | None], Awaitable[None]]


@dataclass
class _Pending:
    method: str  # "chat.update" | "reaction"
    channel: str
    ts: str
    args: dict[str, Any]
    attempts: int = 0
    not_before: float = 0.0
    urgent: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.channel, self.ts)


class _BudgetSetting:
    """An Outbox attribute kept by its Budgets: `outbox.post_rate = 2.0` applies to buckets made later."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, outbox: None, owner: type) -> Self: ...
    @overload
    def __get__(self, outbox: Outbox, owner: type) -> float: ...
    def __get__(self, outbox: Outbox | None, owner: type) -> Self | float:
        return self if outbox is None else float(getattr(outbox.budgets, self.name))

    def __set__(self, outbox: Outbox, value: float) -> None:
        setattr(outbox.budgets, self.name, value)


class Outbox:
    """The bot's single path to Slack for thread messages, status cards and reactions."""

    post_rate = _BudgetSetting()
    post_burst = _BudgetSetting()
    tier3_per_minute = _BudgetSetting()
    tier3_burst = _BudgetSetting()
    tier4_per_minute = _BudgetSetting()
    tier4_burst = _BudgetSetting()

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        post_rate: float = 1.0,
        post_burst: float = 3.0,
        tier3_per_minute: float = 50.0,
        tier3_burst: float = 10.0,
        tier4_per_minute: float = 100.0,
        tier4_burst: float = 20.0,
        update_reserve: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        validate: Callable[[Sequence[dict[str, Any]]], list[str]] | None = None,
        post_patience: float = 600.0,
        on_reaction: ReactionCallback | None = None,
    ) -> None:
        """Budgets: `post_*` per channel (chat.postMessage, a second), `tier3_*` / `tier4_*` each method
        of that tier on its own (a minute). `update_reserve`: chat.update tokens progress updates leave
        for urgent ones. `post_patience`: seconds a post keeps retrying through an outage.
        `on_reaction(channel, ts, name)` is awaited after Slack confirmed a reaction change (`name`
        None: the status reaction was removed)."""
        self.client = client
        self.clock = clock
        self.budgets = Budgets(clock, post_rate=post_rate, post_burst=post_burst,
                               tier3_per_minute=tier3_per_minute, tier3_burst=tier3_burst,
                               tier4_per_minute=tier4_per_minute, tier4_burst=tier4_burst)
        self.update_reserve = update_reserve
        self.on_reaction = on_reaction
        self.validate = validate
        self.stats: Counter[str] = Counter()
        self.posts = Posts(client, self.budgets, self.stats, clock=clock, patience=post_patience)
        self._pending: OrderedDict[tuple[str, str, str], _Pending] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[None]] = {}  # API method -> its one call under way
        self._busy: set[tuple[str, str, str]] = set()  # pending keys with a call under way
        self._reactions: dict[tuple[str, str], str | None] = {}  # what is on the message now
        self._shown: dict[tuple[str, str], str] = {}  # what each updated message shows (its content's digest)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None

    # lifecycle

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="slack-outbox")

    async def stop(self, flush_timeout: float = 5.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await self.flush(flush_timeout)
        tasks = [t for t in (self._worker, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._worker = None
        self._inflight.clear()
        self._busy.clear()

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every pending update has been delivered (or given up)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # budgets

    def bucket(self, method: str, channel: str | None = None) -> TokenBucket | None:
        """The budget `method` is paced by (chat.postMessage: that channel's); None if not paced."""
        return self.budgets.bucket(method, channel)

    def configure_budgets(self, *, post_rate: float | None = None, post_burst: float | None = None,
                          tier3_per_minute: float | None = None, tier3_burst: float | None = None,
                          tier4_per_minute: float | None = None, tier4_burst: float | None = None) -> None:
        """Change budgets after construction (buckets already made included); None keeps a value."""
        self.budgets.configure(post_rate=post_rate, post_burst=post_burst, tier3_per_minute=tier3_per_minute,
                               tier3_burst=tier3_burst, tier4_per_minute=tier4_per_minute,
                               tier4_burst=tier4_burst)

    # awaited: posts and other calls

    async def post(self, channel: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
                   thread_ts: str | None = None, *, task_id: str | None = None, kind: str | None = None,
                   **extra: Any) -> str:
        """chat.postMessage paced per channel; returns the message ts. Raises SlackApiError if Slack refuses.

        The message carries metadata `{"event_type": "superset_bot_post", "event_payload": {"post_id":
        ..., "task_id": ..., "kind": ...}}` (any `metadata` in `extra` is replaced), by which a retry
        finds out whether an earlier attempt went through (see posts.py).
        """
        return await self.posts.post(channel, text, self._checked_blocks(blocks), thread_ts, task_id=task_id,
                                     kind=kind, **extra)

    async def call(self, method: str, **args: Any) -> dict[str, Any]:
        """Any other call (ephemeral, views, permalinks), paced by its method's budget, retried on 429 and
        server errors."""
        self._put_blocks(args, args.pop("blocks", None), replacing=method == "chat.update")
        return await call_with_retries(self.client, method, args, self.bucket(method), self.stats, clock=self.clock)

    # coalesced: fire and forget

    def update(self, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
               *, urgent: bool = False) -> None:
        """Make the message show this content soon; newer content replaces older not yet sent.

        `urgent` (a state change, a closed review) goes ahead of pending progress updates and may use
        the chat.update tokens progress leaves in reserve, so a task's final state shows at once
        however many busy tasks keep updating their cards.
        """
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            args["blocks"] = list(blocks)
        item = _Pending("chat.update", channel, ts, args, urgent=urgent)
        if self._shown.get((channel, ts)) == _content_of(args) and item.key not in self._busy:
            # the message already shows exactly this: the budget is for changes (a pending
            # older content is dropped too, or it would overwrite what is shown)
            self.stats["unchanged"] += 1
            self._pending.pop(item.key, None)
            return
        self._enqueue(item)

    def set_reaction(self, channel: str, ts: str, name: str | None) -> None:
        """Keep exactly one status reaction (`name`; None: none) on a message."""
        self._enqueue(_Pending("reaction", channel, ts, {"name": name}))

    def seed_reactions(self, reactions: Mapping[tuple[str, str], str | None]) -> None:
        """What status reaction each (channel, ts) carries, as `on_reaction` persisted it before a restart,
        so the next `set_reaction` replaces it instead of adding a second one. What this outbox itself
        has seen since it started wins over a seed."""
        for key, name in reactions.items():
            self._reactions.setdefault(key, name)

    def known_reaction(self, channel: str, ts: str) -> str | None:
        """The status reaction the outbox believes is on the message (None: none, or unknown)."""
        return self._reactions.get((channel, ts))

    def _enqueue(self, item: _Pending) -> None:
        key = item.key
        previous = self._pending.pop(key, None)
        if previous is not None:
            self.stats["coalesced"] += 1
            item.attempts, item.not_before = previous.attempts, previous.not_before
            item.urgent = item.urgent or previous.urgent
        self._pending[key] = item  # to the back: every message gets its turn
        if item.urgent:
            # ahead of progress, behind earlier urgent items: an older final state is not overtaken
            for other in [k for k, p in self._pending.items() if not p.urgent]:
                self._pending.move_to_end(other)
        self._idle.clear()
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()  # before looking, so no wake-up in between is lost
            if not self._pending and not self._inflight:
                self._idle.set()
                await self._wakeup.wait()
                continue
            key, method, wait = self._pick()
            if key is None:
                await self._sleep_or_wake(wait)
                continue
            item = self._pending.pop(key)
            if method is None:  # a reaction already as wanted: nothing to send
                continue
            bucket = self.bucket(method)
            assert bucket is not None
            bucket.take()
            self._busy.add(key)
            task = asyncio.create_task(self._deliver(item, method), name=f"slack-outbox {method}")
            self._inflight[method] = task
            task.add_done_callback(functools.partial(self._delivered, method, key))

    def _delivered(self, method: str, key: tuple[str, str, str], _task: asyncio.Task[None]) -> None:
        self._inflight.pop(method, None)
        self._busy.discard(key)
        self._wakeup.set()

    def _pick(self) -> tuple[tuple[str, str, str] | None, str | None, float | None]:
        """(key, API method) of the oldest pending item that can go now; else (None, None, seconds until
        one might, None: when a call under way ends)."""
        now = self.clock()
        soonest: float | None = None
        for key, item in self._pending.items():
            if key in self._busy:
                continue
            if item.not_before > now:
                soonest = _min(soonest, item.not_before - now)
                continue
            method = self._next_call(item)
            if method is None:
                return key, None, 0.0
            if method in self._inflight:
                continue
            bucket = self.bucket(method)
            assert bucket is not None
            need = 1.0
            if method == "chat.update" and not item.urgent:
                need += max(0.0, self.update_reserve)  # progress leaves the reserve to final states
            wait = bucket.delay(need)
            if wait <= 0:
                return key, method, 0.0
            soonest = _min(soonest, wait)
        return None, None, soonest

    def _next_call(self, item: _Pending) -> str | None:
        if item.method == "chat.update":
            return "chat.update"
        current = self._reactions.get((item.channel, item.ts))
        wanted = item.args["name"]
        if current == wanted:
            return None
        return "reactions.remove" if current else "reactions.add"

    async def _sleep_or_wake(self, seconds: float | None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), None if seconds is None else max(0.01, seconds))

    def _requeue(self, item: _Pending, delay: float, *, front: bool = False) -> None:
        key = item.key
        if key in self._pending:  # newer content arrived meanwhile: it wins
            return
        item.attempts += 1
        item.not_before = self.clock() + delay
        self._pending[key] = item
        if front or item.urgent:  # an urgent update keeps its place ahead of progress
            self._pending.move_to_end(key, last=False)

    async def _deliver(self, item: _Pending, method: str) -> None:
        try:
            await self._send(item, method)
        except asyncio.CancelledError:
            raise
        except SlackApiError as exc:
            after = retry_after(exc)
            if after is not None:
                self.stats["429"] += 1
                bucket = self.bucket(method)
                assert bucket is not None
                bucket.pause(after)  # this method's budget only: the others go on
                self._requeue(item, 0.0)
            elif not retryable(exc):
                self.stats["dropped"] += 1
                log.warning("slack %s on %s/%s refused: %s", method, item.channel, item.ts, error_of(exc))
            else:
                self._requeue(item, min(60.0, 2.0 ** item.attempts))
        except Exception as exc:
            log.warning("slack %s on %s/%s failed: %s; will retry", method, item.channel, item.ts, describe(exc))
            self._requeue(item, min(60.0, 2.0 ** item.attempts))

    async def _send(self, item: _Pending, method: str) -> None:
        self.stats[method] += 1
        if method == "chat.update":
            args = dict(item.args)
            self._put_blocks(args, args.pop("blocks", None), replacing=True)
            await self.client.api_call("chat.update", json=args)
            self._shown[(item.channel, item.ts)] = _content_of(item.args)
            return
        key = (item.channel, item.ts)
        target = {"channel": item.channel, "timestamp": item.ts}
        if method == "reactions.remove":
            current = self._reactions.get(key)
            try:
                await self.client.api_call("reactions.remove", params={**target, "name": current})
            except SlackApiError as exc:
                if error_of(exc) != "no_reaction":
                    raise
                self.stats["reaction_stale"] += 1  # someone took it off, or a seed was out of date
            await self._reaction_changed(item.channel, item.ts, None)
            if item.args["name"]:  # the add goes next, with its own budget
                self._requeue(item, 0.0, front=True)
                item.attempts = 0
            return
        wanted = item.args["name"]
        try:
            await self.client.api_call("reactions.add", params={**target, "name": wanted})
        except SlackApiError as exc:
            if error_of(exc) != "already_reacted":
                raise
        await self._reaction_changed(item.channel, item.ts, wanted)

    async def _reaction_changed(self, channel: str, ts: str, name: str | None) -> None:
        self._reactions[(channel, ts)] = name
        if self.on_reaction is None:
            return
        try:
            await self.on_reaction(channel, ts, name)
        except Exception:
            log.exception("on_reaction(%s, %s, %s) failed", channel, ts, name)

    def _put_blocks(self, args: dict[str, Any], blocks: Sequence[dict[str, Any]] | None,
                    replacing: bool = False) -> None:
        checked = self._checked_blocks(blocks, replacing)
        if checked is not None:
            args["blocks"] = checked

    def _checked_blocks(self, blocks: Sequence[dict[str, Any]] | None,
                        replacing: bool = False) -> list[dict[str, Any]] | None:
        """The blocks to send; None: send none. Blocks Slack would reject are left out (the text
        fallback still goes out) rather than lost.

        chat.update keeps a message's old blocks when none are given, and Slack shows blocks over
        text, so an update (`replacing`) sends an empty list instead: the new text is what people see.
        """
        if blocks is None:
            return None
        if self.validate is not None:
            problems = self.validate(blocks)
            if problems:
                self.stats["invalid_blocks"] += 1
                log.error("leaving out blocks Slack would reject: %s", "; ".join(problems[:5]))
                return [] if replacing else None
        return list(blocks)


def _content_of(args: Mapping[str, Any]) -> str:
    """A digest of an update's text and blocks, to skip sending what a message already shows."""
    body = json.dumps([args.get("text"), args.get("blocks")], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)
