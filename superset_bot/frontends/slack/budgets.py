"""The outbox's rate budgets: a token bucket per Slack Web API method (per channel for posts).

Slack counts each Web API method on its own (per app, per workspace): chat.update, chat.delete,
reactions.add and reactions.remove each have a Tier 3 budget (about 50 calls a minute, short bursts
welcome); chat.postEphemeral, views.* and files.* a Tier 4 one (about 100 a minute); chat.postMessage
about one a second per channel. A 429's Retry-After pauses that method's bucket only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Slack's rate-limit tiers of the methods the bot calls; each method has its own budget of its tier.
# Others (auth.test, chat.getPermalink) are not paced here.
TIER3_METHODS = frozenset({
    "chat.update", "chat.delete", "reactions.add", "reactions.remove", "conversations.history",
    "conversations.replies",
})
TIER4_METHODS = frozenset({"chat.postEphemeral"})
TIER4_PREFIXES = ("views.", "files.")


def tier_of(method: str) -> str | None:
    """"tier3", "tier4", or None for a method the outbox does not pace (chat.postMessage has its own)."""
    if method in TIER3_METHODS:
        return "tier3"
    if method in TIER4_METHODS or method.startswith(TIER4_PREFIXES):
        return "tier4"
    return None


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

    def delay(self, need: float = 1.0) -> float:
        """Seconds until `need` tokens are there (0 when they are); `need` is capped at `burst`."""
        self._refill()
        need = min(need, self.burst)
        wait = max(0.0, self.paused_until - self.clock())
        if self.tokens < need:
            wait = max(wait, (need - self.tokens) / self.rate)
        return wait

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.tokens = min(self.tokens, 0)

    def reconfigure(self, rate: float, burst: float) -> None:
        self._refill()
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, burst)

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:  # noqa: ASYNC110 - pacing, the wait is computed
            await asyncio.sleep(wait)
        self.take()


class Budgets:
    """The buckets, made on first use: `post_*` per channel (chat.postMessage, a second), `tier3_*` /
    `tier4_*` each method of that tier on its own (a minute). A changed value applies to buckets made
    later; `configure` changes the ones already made too."""

    def __init__(self, clock: Callable[[], float], *, post_rate: float, post_burst: float,
                 tier3_per_minute: float, tier3_burst: float, tier4_per_minute: float,
                 tier4_burst: float) -> None:
        self.clock = clock
        self.post_rate, self.post_burst = post_rate, post_burst  # per channel
        self.tier3_per_minute, self.tier3_burst = tier3_per_minute, tier3_burst  # per method
        self.tier4_per_minute, self.tier4_burst = tier4_per_minute, tier4_burst  # per method
        self._post_buckets: dict[str, TokenBucket] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, method: str, channel: str | None = None) -> TokenBucket | None:
        """The budget `method` is paced by (chat.postMessage: that channel's); None if not paced."""
        if method == "chat.postMessage":
            return self.post_bucket(channel or "")
        tier = tier_of(method)
        if tier is None:
            return None
        if method not in self._buckets:
            per_minute, burst = self._tier_budget(tier)
            self._buckets[method] = TokenBucket(per_minute / 60.0, burst, self.clock)
        return self._buckets[method]

    def post_bucket(self, channel: str) -> TokenBucket:
        """chat.postMessage's budget in `channel`."""
        if channel not in self._post_buckets:
            self._post_buckets[channel] = TokenBucket(self.post_rate, self.post_burst, self.clock)
        return self._post_buckets[channel]

    def _tier_budget(self, tier: str) -> tuple[float, float]:
        if tier == "tier3":
            return self.tier3_per_minute, self.tier3_burst
        return self.tier4_per_minute, self.tier4_burst

    def configure(self, *, post_rate: float | None = None, post_burst: float | None = None,
                  tier3_per_minute: float | None = None, tier3_burst: float | None = None,
                  tier4_per_minute: float | None = None, tier4_burst: float | None = None) -> None:
        """Change budgets, buckets already made included; None keeps a value."""
        self.post_rate = self.post_rate if post_rate is None else post_rate
        self.post_burst = self.post_burst if post_burst is None else post_burst
        self.tier3_per_minute = self.tier3_per_minute if tier3_per_minute is None else tier3_per_minute
        self.tier3_burst = self.tier3_burst if tier3_burst is None else tier3_burst
        self.tier4_per_minute = self.tier4_per_minute if tier4_per_minute is None else tier4_per_minute
        self.tier4_burst = self.tier4_burst if tier4_burst is None else tier4_burst
        for bucket in self._post_buckets.values():
            bucket.reconfigure(self.post_rate, self.post_burst)
        for method, bucket in self._buckets.items():
            per_minute, burst = self._tier_budget(tier_of(method) or "tier3")
            bucket.reconfigure(per_minute / 60.0, burst)
