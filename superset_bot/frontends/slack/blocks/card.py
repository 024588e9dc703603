"""A task's two living messages: the root message that starts its thread, and the status card in the
thread that follows the agent's progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from superset_bot.frontends.slack.blocks.coerce import as_int, as_list, as_map, as_str, num
from superset_bot.frontends.slack.blocks.figures import count, duration, stats
from superset_bot.frontends.slack.blocks.kit import Block, Rendered, context, fallback, fit, section
from superset_bot.frontends.slack.blocks.task import state_emoji, state_label, task_context, task_id
from superset_bot.frontends.slack.blocks.text import clean, code_block, esc, esc_line, inline_code, quote
from superset_bot.store import ACTIVE_STATES, FINISHED, MERGED, PREPARING, QUEUED, RUNNING, Task


def root_message(task: Task) -> Rendered:
    """The channel message that starts a task's thread; updated when the state changes."""
    tid = task_id(task)
    label = state_label(task.state)

    def build(scale: float) -> list[Block]:
        prompt = quote(task.prompt, max(40, int(500 * scale)), max(2, int(8 * scale))) or ">_(no prompt)_"
        head = f"{state_emoji(task.state)} *Task {inline_code(tid, 40)}* · {label}"
        return [section(f"{head}\n{prompt}"), context(" · ".join([*task_context(task), label]))]

    text = f"Task {esc_line(tid, 40)} · {label}: {esc_line(task.prompt, 200)}"
    return Rendered(fallback(text), fit(build))


def elapsed(task: Task, now: float) -> float:
    start = num(task.started_at) or num(task.created_at) or now
    end = now
    if task.state not in ACTIVE_STATES and num(task.finished_at):
        end = num(task.finished_at) or now
    if task.state == QUEUED:
        start = num(task.created_at) or now
    return max(0.0, end - start)


def headline(task: Task, progress: Mapping[str, Any], now: float, queue_position: int | None,
             scale: float = 1.0) -> str:
    """First lines of a status card: state, time, what the agent is doing right now."""
    state = task.state
    took = duration(elapsed(task, now))
    emoji = state_emoji(state)
    if state == QUEUED:
        head = f"{emoji} *Queued* · waiting {took}"
        pos = as_int(queue_position)
        if pos is not None and pos > 0:
            head += f" · #{pos} in line"
        return head
    if state == PREPARING:
        return f"{emoji} *Preparing the worktree* · {took}"
    if state == RUNNING:
        head = f"{emoji} *Running* · {took}"
        action = as_str(progress.get("action"))
        phase = progress.get("phase")
        if action:
            head += f"\n*Now:* {inline_code(action, max(40, int(200 * scale)))}"
        elif phase == "finishing":
            head += "\n_Wrapping up…_"
        elif phase == "done":
            head += "\n_The agent has exited._"
        else:
            head += "\n_Starting the agent…_"
        if progress.get("is_error") is True:
            head += "\n⚠️ The agent reported an error."
        return head
    head = f"{emoji} *{state_label(state).capitalize()}* · took {took}"
    if task.reason and state not in (FINISHED, MERGED):
        head += f"\n{esc(task.reason, max(60, int(500 * scale)))}"
    return head


def progress_tail(progress: Mapping[str, Any]) -> list[str]:
    return [line if isinstance(line, str) else clean(line) for line in as_list(progress.get("tail"))[-200:]]


def progress_context(task: Task, progress: Mapping[str, Any]) -> list[str]:
    parts = stats(progress.get("tools_used"), progress.get("tokens_in"), progress.get("tokens_out"),
                  progress.get("cost_usd"))
    lines = as_int(progress.get("lines_seen"))
    if lines:
        parts.append(count(lines, "line") + " of output")
    items = [f"task {inline_code(task_id(task), 40)}"]
    if parts:
        items.append(" · ".join(parts))
    return items


def denials_text(info: Mapping[str, Any], scale: float) -> str:
    """What the agent's permissions or sandbox refused, each with how to grant it ("" for none)."""
    denials = [d for d in as_list(info.get("denials")) if isinstance(d, str) and d.strip()]
    if not denials:
        return ""
    n = max(1, int(5 * scale))
    lines = [f"• {esc(d, max(60, int(300 * scale)))}" for d in denials[:n]]
    if len(denials) > n:
        lines.append(f"_…and {len(denials) - n:,} more_")
    return ":no_entry: *Refused by the agent's permissions*\n" + "\n".join(lines)


def status_card(task: Task, progress: Mapping[str, Any] | None, *, now: float,
                queue_position: int | None = None) -> Rendered:
    """The one status message in a task's thread, kept current with chat.update."""
    p = as_map(progress)
    tail = progress_tail(p)

    def build(scale: float) -> list[Block]:
        blocks = [section(headline(task, p, now, queue_position, scale)),
                  context(*progress_context(task, p))]
        denials = denials_text(p, scale)
        if denials:
            blocks.append(section(denials))
        block = code_block(tail, max_chars=int(2900 * scale))
        if block:
            blocks.append(section(block))
        return blocks

    action = as_str(p.get("action"))
    text = f"Task {esc_line(task_id(task), 40)}: {state_label(task.state)} · {duration(elapsed(task, now))}"
    if action and task.state == RUNNING:
        text += f" · {esc_line(action, 200)}"
    return Rendered(fallback(text), fit(build))

