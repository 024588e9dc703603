"""The status digest as a Slack message: what runs, what waits for review, what closed, and disk use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from superset_bot.frontends.slack.blocks.kit import Rendered, chunk_sections, context, fit, header
from superset_bot.frontends.slack.blocks.lists import task_line
from superset_bot.frontends.slack.blocks.text import esc_line, mention, slack_date
from superset_bot.store import Task
from superset_bot.units import format_size

if TYPE_CHECKING:
    from superset_bot.housekeeping.jobs import Digest

SECTION_MAX_TASKS = 15


def digest_message(digest: Digest, permalink: Callable[[Task], str | None]) -> Rendered:
    def lines(tasks: list[Task], limit: int) -> list[str]:
        shown = [task_line(t, permalink(t), now=digest.now, cost=spent.brief() if (
            spent := digest.spend_by_task.get(t.id)) else "") for t in tasks[:limit]]
        if len(tasks) > limit:
            shown.append(f"… and {len(tasks) - limit} more")
        return shown

    def build(scale: float) -> list[dict]:
        limit = max(1, int(SECTION_MAX_TASKS * scale))
        blocks: list[dict] = [header("Superset status digest")]
        for title, tasks in (
            (f"*Running* ({len(digest.running)})", digest.running),
            (f"*Awaiting review* ({len(digest.awaiting)}), oldest first", digest.awaiting),
            (f"*Closed since {slack_date(digest.since)}* ({len(digest.closed)})", digest.closed),
            (f"*About to be pruned* ({len(digest.to_prune)}): press Keep in the thread to keep one",
             digest.to_prune),
        ):
            if tasks:
                blocks.extend(chunk_sections([title, *lines(tasks, limit)]))
        spend = []
        for title, sums, named in (("*Spend by person*", digest.spend_by_user, mention),
                                   ("*Spend by repo*", digest.spend_by_repo, lambda who: esc_line(who, 60))):
            if sums:
                ranked = sorted(sums.items(), key=lambda kv: -kv[1].cost_usd)[:limit]
                spend.append(f"{title}: " + "; ".join(f"{named(who)} {esc_line(s.text(), 120)}" for who, s in ranked))
        if spend:
            blocks.extend(chunk_sections(spend))
        disk = ", ".join(f"{name}: {format_size(size)}" for name, size in sorted(digest.disk.items()))
        blocks.append(context(f"Worktrees use {disk or 'nothing'}; {format_size(digest.free_disk)} free on disk."))
        return blocks

    summary = (f"Digest: {len(digest.running)} running, {len(digest.awaiting)} awaiting review, "
               f"{len(digest.closed)} closed, {len(digest.to_prune)} about to be pruned")
    return Rendered(summary, fit(build))
