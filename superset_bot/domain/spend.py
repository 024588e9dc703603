"""What agents cost: a run's usage as the ledger records it (an audit event "usage" at each run's
end), sums of it per person or repo, and the day a daily budget counts from.

A cost is what the agent reported (Claude Code and aider report one), or for an agent that reports
tokens only (Codex) its tokens at its model's list price (`domain.prices`): such a run's usage names
that model in "cost_estimated_from", and sums say how many of their runs were estimated. A run
without a cost (a model the price table does not know) is counted as unpriced and shown by its
tokens: no figure is made up.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

USAGE = "usage"  # the audit event of a run's usage


@dataclass(frozen=True)
class Spend:
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    runs: int = 0
    unpriced: int = 0  # runs with tokens but no cost reported
    estimated: int = 0  # runs whose cost is estimated from a list price (counted in cost_usd)

    def plus(self, other: Spend) -> Spend:
        return Spend(self.cost_usd + other.cost_usd, self.tokens_in + other.tokens_in,
                     self.tokens_out + other.tokens_out, self.runs + other.runs, self.unpriced + other.unpriced,
                     self.estimated + other.estimated)

    @classmethod
    def of_usage(cls, detail: Mapping[str, object]) -> Spend:
        """One run's usage event (`usage_detail`) as a Spend; unreadable fields count as nothing."""
        cost = detail.get("cost_usd")
        tokens_in, tokens_out = _count(detail.get("tokens_in")), _count(detail.get("tokens_out"))
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            estimated = 1 if isinstance(detail.get("cost_estimated_from"), str) else 0
            return cls(float(cost), tokens_in, tokens_out, 1, 0, estimated)
        return cls(0.0, tokens_in, tokens_out, 1, 1 if tokens_in or tokens_out else 0)

    def text(self) -> str:
        """"$1.23 (45.6k tokens)", "$1.23 (45.6k tokens; 2 runs with tokens only)", "12.3k tokens",
        "$1.23 (45.6k tokens; 1 run estimated from list prices)"."""
        tokens = self.tokens_in + self.tokens_out
        shown = f"{_tokens(tokens)} tokens"
        if self.runs and self.unpriced == self.runs:
            return shown
        notes = [shown]
        if self.estimated:
            notes.append(f"{_runs(self.estimated)} estimated from list prices")
        if self.unpriced:
            notes.append(f"{_runs(self.unpriced)} with tokens only")
        return f"${self.cost_usd:,.2f} ({'; '.join(notes)})"

    def brief(self) -> str:
        """One task's spend on a list line: "$0.42", "$0.42 est." (from list prices), "12.3k tokens", or ""
        before any run has ended."""
        if not self.runs:
            return ""
        if self.unpriced == self.runs:
            tokens = self.tokens_in + self.tokens_out
            return f"{_tokens(tokens)} tokens" if tokens else ""
        # runs with tokens only are not in the dollars: say they are there
        extra = f" + {_runs(self.unpriced)} with tokens only" if self.unpriced else ""
        return f"${self.cost_usd:,.2f}{' est.' if self.estimated else ''}{extra}"


@dataclass(frozen=True)
class Usage:
    """One run's usage as the ledger holds it, with whose task it was."""

    task_id: str
    requester: str
    repo: str
    detail: Mapping[str, object]

    @property
    def run(self) -> object:
        return self.detail.get("run")


def sum_by(usages: list[Usage], by: str) -> dict[str, Spend]:
    """The usages summed per requester (`by="requester"`), repo or task (`by="task_id"`)."""
    if by not in ("requester", "repo", "task_id"):
        raise ValueError(f"spend is summed by requester, repo or task_id, not {by!r}")
    sums: dict[str, Spend] = {}
    for usage in usages:
        who = getattr(usage, by)
        sums[who] = sums.get(who, Spend()).plus(Spend.of_usage(usage.detail))
    return sums


def usage_detail(run: int, cost_usd: float | None, tokens_in: int | None, tokens_out: int | None,
                 cost_estimated_from: str | None = None) -> dict[str, object]:
    """A run's usage event; `cost_estimated_from` (only written when set) is the model whose list
    price `cost_usd` was estimated at, for an agent that reports tokens only."""
    detail: dict[str, object] = {"run": run, "cost_usd": cost_usd, "tokens_in": tokens_in, "tokens_out": tokens_out}
    if cost_estimated_from is not None and cost_usd is not None:
        detail["cost_estimated_from"] = cost_estimated_from
    return detail


def day_start(now: float, timezone: str) -> float:
    """Midnight of `now`'s day in `timezone`: where a daily budget starts counting."""
    zone = ZoneInfo(timezone)
    local = datetime.datetime.fromtimestamp(now, zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _tokens(n: int) -> str:
    return f"{n / 1_000_000:.1f}M" if n >= 1_000_000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)
