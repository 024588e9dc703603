"""Numbers as people read them: counts, token totals, cost, durations and an agent run's stats."""

from __future__ import annotations

from superset_bot.domain.prices import estimate_label
from superset_bot.frontends.slack.blocks.coerce import as_int, as_str, num
from superset_bot.frontends.slack.blocks.text import esc_line
from superset_bot.units import format_duration


def count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def format_tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{n / 1_000_000_000:.1f}B"


def format_cost(usd: float) -> str:
    if usd <= 0:
        return "$0.00"
    if usd < 0.01:
        return "<$0.01"
    return f"${usd:,.2f}" if usd < 1e9 else f"${usd:.3g}"


def cost_text(usd: float, estimated_from: object = None) -> str:
    """A cost as every surface shows it: "$0.12", or for one estimated from a model's list price
    (Codex reports tokens only) "$0.12 (est. from gpt-5-codex list price)"."""
    model = as_str(estimated_from)
    shown = format_cost(usd)
    return f"{shown} ({esc_line(estimate_label(model), 120)})" if model else shown


def duration(seconds: float | None) -> str:
    value = num(seconds)
    return format_duration(max(0.0, value)) if value is not None else "?"


def stats(tools: object = None, tokens_in: object = None, tokens_out: object = None,
          cost: object = None, cost_estimated_from: object = None) -> list[str]:
    parts: list[str] = []
    n_tools = as_int(tools)
    if n_tools:
        parts.append(count(n_tools, "tool call"))
    t_in, t_out = as_int(tokens_in), as_int(tokens_out)
    if t_in or t_out:
        parts.append(f"{format_tokens(max(t_in or 0, 0))} in / {format_tokens(max(t_out or 0, 0))} out tokens")
    usd = num(cost)
    if usd is not None and usd >= 0:
        parts.append(cost_text(usd, cost_estimated_from))
    return parts
