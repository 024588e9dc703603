"""The outbox's chat.postMessage: awaited, ordered per channel, retried through an outage, never doubled.

A thread reply (a review with its buttons, "Merged into ...") is not coalesced like an update: given
up on, it is lost, so a post keeps retrying through an outage of up to `patience` seconds. Each post
carries message metadata (event_type `superset_bot_post`) with a fresh `post_id`, and before sending
again after an *ambiguous* failure (a transport error or timeout, HTTP 5xx: Slack may have posted it)
it looks for that post_id in the thread or channel (conversations.replies / conversations.history,
which need the *:history scopes) and returns the message it finds. If it cannot look (no history
scope, not a member), it warns and posts again: a doubled reply is better than a lost review; while
Slack fails the read too (an outage), it looks again later instead of posting blind. A post to a user
id goes to the DM channel Slack answers with, which is where a later lookup reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.frontends.slack.budgets import Budgets, TokenBucket
from superset_bot.frontends.slack.retries import (
    ambiguous,
    backoff,
    call_with_retries,
    describe,
    error_of,
    is_transport_error,
    retry_after,
    retryable,
)

log = logging.getLogger(__name__)

POST_EVENT_TYPE = "superset_bot_post"
# how far before a post's first attempt its lookup reads (Slack's clock and ours may differ a little)
POST_LOOKBACK_SECONDS = 120.0
_LOOKUP_PAGES = 5
_HISTORY_SCOPES = "channels:history, groups:history, im:history or mpim:history"


class Posts:
    """Sends the outbox's posts; counts deduplicated and unverified retries in `stats`."""

    def __init__(self, client: AsyncWebClient, budgets: Budgets, stats: Counter[str], *,
                 clock: Callable[[], float], patience: float) -> None:
        self.client = client
        self.budgets = budgets
        self.stats = stats
        self.clock = clock
        self.patience = patience
        self._locks: dict[str, asyncio.Lock] = {}
        self._dm_channels: dict[str, str] = {}  # user id posted to -> the DM channel Slack answered with

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
                   thread_ts: str | None = None, *, task_id: str | None = None, kind: str | None = None,
                   **extra: Any) -> str:
        """The posted message's ts; `blocks` as they go out (already checked). Raises SlackApiError if
        Slack refuses. Any `metadata` in `extra` is replaced by the post's own."""
        post_id = uuid.uuid4().hex
        payload: dict[str, str] = {"post_id": post_id}
        if task_id:
            payload["task_id"] = task_id
        if kind:
            payload["kind"] = kind
        args: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False,
                                **extra, "metadata": {"event_type": POST_EVENT_TYPE, "event_payload": payload}}
        if blocks is not None:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        bucket = self.budgets.post_bucket(channel)
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            return await self._post_with_retries(args, bucket, post_id)

    async def _post_with_retries(self, args: dict[str, Any], bucket: TokenBucket, post_id: str) -> str:
        """Like `call_with_retries`, but a post that may have gone through is looked for before another."""
        channel, thread_ts = str(args["channel"]), args.get("thread_ts")
        delay = 1.0
        give_up_at = self.clock() + self.patience
        since = time.time() - POST_LOOKBACK_SECONDS  # Slack's ts are wall-clock seconds
        attempt = 0
        unsure = False  # an earlier attempt may have posted: look before posting again
        warned = False
        while True:
            attempt += 1
            last = attempt >= 6 and self.clock() >= give_up_at
            if unsure:
                found, problem, transient = await self._find_post(channel, thread_ts, post_id, since)
                if found is not None:
                    self.stats["post_deduplicated"] += 1
                    log.info("slack chat.postMessage to %s had gone through (%s); not posting it again", channel, found)
                    return found
                if problem is not None and transient and not last:
                    # Slack cannot answer a read now, so it would hardly take the post either: look again
                    # later rather than post blind (the post is still retried within `patience`)
                    self.stats["post_lookup_failed"] += 1
                    log.warning("slack chat.postMessage to %s: cannot tell yet whether the failed attempt went "
                                "through (%s); will look again before posting", channel, problem)
                    delay = await backoff(delay)
                    continue
                if problem is not None:
                    self.stats["post_unverified_retry"] += 1
                    if not warned:
                        warned = True
                        log.warning("slack chat.postMessage to %s: cannot tell whether the failed attempt went "
                                    "through (%s); posting again, it may show twice", channel, problem)
            await bucket.acquire()
            try:
                self.stats["chat.postMessage"] += 1
                response = await self.client.api_call("chat.postMessage", json=args)
                data = dict(response.data) if isinstance(response.data, dict) else {}
                answered_channel = data.get("channel")
                if isinstance(answered_channel, str) and answered_channel != channel:
                    self._dm_channels[channel] = answered_channel  # a user id: Slack opened the DM
                return str(data["ts"])
            except SlackApiError as exc:
                unsure = unsure or ambiguous(exc)
                if not retryable(exc) or last:
                    if unsure and (found := await self._found_after_all(channel, thread_ts, post_id, since)):
                        return found
                    raise
                after = retry_after(exc)
                if after is not None:
                    self.stats["429"] += 1
                    bucket.pause(after)
                    continue
                log.warning("slack chat.postMessage to %s failed (%s); retrying", channel, error_of(exc) or exc)
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                unsure = True
                if last:
                    if found := await self._found_after_all(channel, thread_ts, post_id, since):
                        return found
                    raise
                log.warning("slack chat.postMessage to %s failed (%s); checking before retrying", channel,
                            describe(exc))
            delay = await backoff(delay)

    async def _found_after_all(self, channel: str, thread_ts: str | None, post_id: str,
                               since: float) -> str | None:
        """Before giving up on a post that may have gone through: the ts if it did."""
        found, _, _ = await self._find_post(channel, thread_ts, post_id, since)
        if found is not None:
            self.stats["post_deduplicated"] += 1
        return found

    async def _find_post(self, channel: str, thread_ts: str | None, post_id: str,
                         since: float) -> tuple[str | None, str | None, bool]:
        """(ts of the message carrying `post_id` or None; None, or why Slack could not be asked; whether
        that may pass: an outage, a 429, a transport error, rather than a missing scope or membership)."""
        conversation = self._dm_channels.get(channel, channel)
        method = "conversations.replies" if thread_ts else "conversations.history"
        args: dict[str, Any] = {"channel": conversation, "oldest": f"{since:.6f}", "include_all_metadata": True,
                                "limit": 200}
        if thread_ts:
            args["ts"] = thread_ts
        try:
            for _ in range(_LOOKUP_PAGES):
                data = await call_with_retries(self.client, method, dict(args), self.budgets.bucket(method),
                                               self.stats, clock=self.clock, attempts=3)
                for message in data.get("messages") or []:
                    if _post_id_of(message) == post_id:
                        return str(message.get("ts")), None, False
                cursor = (data.get("response_metadata") or {}).get("next_cursor")
                if not data.get("has_more") or not cursor:
                    break
                args["cursor"] = cursor
        except SlackApiError as exc:
            error = error_of(exc) or str(exc)
            if error == "missing_scope":
                answer = getattr(exc.response, "data", None)
                needed = answer.get("needed") if isinstance(answer, dict) else None
                return None, (f"{method} answered missing_scope: the bot token lacks the history scope to read "
                              f"{conversation} (needs {needed or _HISTORY_SCOPES}); add it and reinstall the app, "
                              "see `superset-bot doctor`"), False
            if error in ("not_in_channel", "channel_not_found"):
                return None, f"{method} answered {error}: the bot cannot read {conversation}", False
            return None, f"{method} on {conversation} failed: {error}", retryable(exc)
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            return None, f"{method} on {conversation} failed: {describe(exc)}", True
        return None, None, False


def _post_id_of(message: Any) -> str | None:
    metadata = message.get("metadata") if isinstance(message, dict) else None
    if not isinstance(metadata, dict) or metadata.get("event_type") != POST_EVENT_TYPE:
        return None
    payload = metadata.get("event_payload")
    post_id = payload.get("post_id") if isinstance(payload, dict) else None
    return post_id if isinstance(post_id, str) else None
