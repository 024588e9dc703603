"""Short replies in a task's thread: a milestone reached, the warning before a prune (with Keep), and
a failure (with Retry).
"""

from __future__ import annotations

from superset_bot.frontends.slack.blocks.actions import keep_button, move_button, retry_button
from superset_bot.frontends.slack.blocks.coerce import num
from superset_bot.frontends.slack.blocks.kit import Rendered, actions_block, fallback, section
from superset_bot.frontends.slack.blocks.task import task_id
from superset_bot.frontends.slack.blocks.text import esc, esc_line, inline_code, mention, mention_people
from superset_bot.store import Task


def milestone(task: Task, text: str, ok: bool = True, *, actor: str | None = None) -> Rendered:
    """A short thread reply marking a step (worktree ready, checks passed, merged, ...).

    `text` is escaped like everything else; to credit a person, write "{actor}" in it and pass
    `actor` (a user id becomes a real `<@U..>` mention).
    """
    mark = "✅" if ok else "⚠️"
    who = mention(actor) if actor else "someone"
    body = mention_people((esc(text, 2800) or "(no details)").replace("{actor}", who, 1))
    line = mention_people(esc_line(text, 500).replace("{actor}", who, 1))
    who_of = f"*Attempt {esc_line(task.race_label, 4)}* · " if task.race_label else ""  # a race's thread
    return Rendered(fallback(f"{mark} Task {esc_line(task_id(task), 40)}: {line}"),
                    [section(f"{mark} {who_of}{body}")])




def host_lost(task: Task, text: str) -> Rendered:
    """A worker host stopped answering: the milestone, with Retry on another host."""
    shown = milestone(task, text, ok=False)
    return Rendered(shown.text, [*shown.blocks, actions_block([move_button(task)])])


def _hours(value: object) -> str:
    hours = num(value)
    if hours is None or hours < 0:
        return "soon"
    return f"{int(hours)}h" if hours == int(hours) else f"{hours:.1f}h"


def prune_warning(task: Task, hours: float) -> Rendered:
    """A heads-up before the scheduler removes a stale worktree, with a Keep button."""
    tid = task_id(task)
    when = _hours(hours)
    sentence = (f"This worktree will be pruned in {when} unless you keep it."
                if when != "soon" else "This worktree will be pruned soon unless you keep it.")
    blocks = [
        section(f":broom: *Task {inline_code(tid, 40)}* · {sentence}"),
        actions_block([keep_button(task)]),
    ]
    return Rendered(fallback(f"Task {esc_line(tid, 40)}: {sentence}"), blocks)


def failure_with_retry(task: Task, reason: str) -> Rendered:
    """A failed task's notice with a Retry button that runs the same prompt again."""
    tid = task_id(task)
    why = mention_people(esc(reason, 2000).strip()) or "no reason was given"
    blocks = [
        section(f":x: *Task {inline_code(tid, 40)} failed:* {why}"),
        actions_block([retry_button(task)]),
    ]
    return Rendered(fallback(f"Task {esc_line(tid, 40)} failed: {mention_people(esc_line(reason, 500))}"), blocks)
