"""Which Slack failures are worth another try, the retry loop of paced calls, and the SDK's own retries.

Slack's ok:false answers are refusals (a spent trigger, a missing message, bad arguments) that no retry
can fix; only HTTP 429 and 5xx, a few transient error codes and transport errors are retried. Some of
those are *ambiguous*: Slack may have done it anyway (HTTP 5xx, a transport error or timeout), which
posts.py checks before posting again. A 429 or an ok:false refusal means Slack did nothing.

The SDK must not retry chat.postMessage by itself (a dropped connection after Slack accepted a post
would post it twice): build the client with `slack_retry_handlers()`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.frontends.slack.budgets import TokenBucket

log = logging.getLogger(__name__)

# the error codes worth another try (HTTP 429/5xx and transport errors are too)
TRANSIENT_ERRORS = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "team_added_to_org",
})
# Of those, the answers after which Slack may have done it anyway ("it's possible some aspect of the
# operation succeeded before the error was raised"); HTTP 5xx and transport errors are ambiguous too.
AMBIGUOUS_ERRORS = frozenset({"internal_error", "fatal_error"})


class PostSafeConnectionErrorRetryHandler(AsyncConnectionErrorRetryHandler):
    """slack_sdk's retry of connection errors, but never for chat.postMessage.

    A connection that drops after Slack accepted a post (before its answer arrived) looks like any
    other connection error, and a blind retry posts twice. The outbox retries posts itself, after
    checking whether the first one went through.
    """

    not_retried = frozenset({"chat.postMessage"})

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if _api_method(request.url) in self.not_retried:
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


def slack_retry_handlers() -> list[AsyncRetryHandler]:
    """The retry handlers for the bot's AsyncWebClient: connection errors (not for posts) and one 429.

    A 429 means Slack did not do it, so retrying one is safe for every method, posts included.
    """
    return [PostSafeConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=1)]


def _api_method(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


async def call_with_retries(client: AsyncWebClient, method: str, args: dict[str, Any], bucket: TokenBucket | None,
                            stats: Counter[str], *, clock: Callable[[], float], attempts: int = 6,
                            patience: float = 0.0) -> dict[str, Any]:
    """`method` paced by `bucket` (None: not paced), its answer's data; retries 429s, server errors and
    transport errors `attempts` times, or for `patience` seconds. Counts calls and 429s in `stats`."""
    delay = 1.0
    give_up_at = clock() + patience
    attempt = 0
    while True:
        attempt += 1
        last = attempt >= attempts and clock() >= give_up_at
        if bucket is not None:
            await bucket.acquire()
        try:
            stats[method] += 1
            if _json_method(method):
                response = await client.api_call(method, json=args)
            else:
                response = await client.api_call(method, params=args)
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            if not retryable(exc) or last:
                raise
            after = retry_after(exc)
            if after is not None:
                stats["429"] += 1
                if bucket is not None:
                    bucket.pause(after)
                else:
                    await asyncio.sleep(after)
                continue
        except Exception as exc:
            if last or not is_transport_error(exc):
                raise
            log.warning("slack %s failed (%s); retrying", method, describe(exc))
        delay = await backoff(delay)


def _json_method(method: str) -> bool:
    return method.startswith(("chat.", "views."))


async def backoff(delay: float) -> float:
    """Sleep about `delay` seconds (jittered); the next, doubled delay (at most 30 s)."""
    await asyncio.sleep(delay * (0.5 + random.random()))
    return min(delay * 2, 30.0)


def error_of(exc: SlackApiError) -> str:
    """Slack's error code ("" if the answer has none)."""
    data = getattr(exc.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def status_of(exc: SlackApiError) -> int | None:
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return status if isinstance(status, int) else None


def retryable(exc: SlackApiError) -> bool:
    """HTTP 429 or 5xx, one of Slack's transient error codes, or an answer without an error code."""
    status = status_of(exc)
    if status is not None and (status == 429 or status >= 500):
        return True
    error = error_of(exc)
    return not error or error in TRANSIENT_ERRORS


def ambiguous(exc: SlackApiError) -> bool:
    """Whether Slack may have done it despite the error: HTTP 5xx, an answer we cannot read, or an error
    Slack says may come after part of the work. A 429 and an ok:false refusal mean it did nothing."""
    status = status_of(exc)
    if status == 429:
        return False
    if status is not None and status >= 500:
        return True
    error = error_of(exc)
    return not error or error in AMBIGUOUS_ERRORS


def retry_after(exc: SlackApiError) -> float | None:
    """A 429's Retry-After in seconds (at least 1); None if `exc` is no 429."""
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


def is_transport_error(exc: Exception) -> bool:
    import aiohttp

    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)


def describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
