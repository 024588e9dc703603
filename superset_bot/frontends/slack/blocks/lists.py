"""Tasks as lists: one line per task, and the `list` answer made of those lines."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from superset_bot.frontends.slack.blocks.coerce import as_map, num
from superset_bot.frontends.slack.blocks.figures import count, duration
from superset_bot.frontends.slack.blocks.kit import (
    Block,
    Rendered,
    chunk_sections,
    context,
    fallback,
    fit,
    header,
    section,
)
from superset_bot.frontends.slack.blocks.limits import HEADER_MAX
from superset_bot.frontends.slack.blocks.task import state_emoji, state_label, task_id
from superset_bot.frontends.slack.blocks.text import esc_line, inline_code, link, no_fence, one_line
from superset_bot.store import Task

LIST_MAX = 40  # tasks in one `list` answer


def task_line(task: Task, permalink: str | None, *, now: float | None = None, cost: str = "") -> str:
    """One mrkdwn line per task for lists: emoji, id, state, repo, age, what it cost so far (`cost`, as
    `Spend.brief` says it), prompt, thread link."""
    current = time.time() if now is None else now
    created = num(task.created_at)
    age = f"{duration(current - created)} ago" if created else "?"
    parts = [
        f"{state_emoji(task.state)} {inline_code(task_id(task), 40)} *{state_label(task.state)}*",
        esc_line(task.repo, 40),
        *([f"attempt {esc_line(task.race_label, 4)} of race {inline_code(task.race_id, 20)}"] if task.race_id else []),
        age,
        *([esc_line(cost, 40)] if cost else []),
        f"“{esc_line(no_fence(one_line(task.prompt, 60)), 300)}”",
    ]
    thread = link(permalink, "thread")
    if thread:
        parts.append(thread)
    return " · ".join(parts)


def task_list(tasks: Sequence[Task], permalinks: Mapping[str, str], *, title: str, now: float) -> Rendered:
    """The `list` answer (ephemeral): one line per task, the newest work first as given."""
    links = as_map(permalinks)
    heading = esc_line(title, HEADER_MAX) or "Tasks"
    if not tasks:
        empty = "No tasks running or awaiting review."
        return Rendered(empty, [header(heading), section(empty)])

    def build(scale: float) -> list[Block]:
        n = max(1, int(LIST_MAX * scale))
        shown = tasks[:n]
        lines = [task_line(t, links.get(t.id) if isinstance(t.id, str) else None, now=now) for t in shown]
        blocks = [header(heading), *chunk_sections(lines)]
        if len(tasks) > len(shown):
            blocks.append(context(f"…and {len(tasks) - len(shown):,} more"))
        return blocks

    text = f"{heading}: {count(len(tasks), 'task')}"
    return Rendered(fallback(text), fit(build))
