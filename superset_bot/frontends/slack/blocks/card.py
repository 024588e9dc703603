"""A task's live message: the root of its thread, which is also its status card."""

from __future__ import annotations

from collections.abc import Iterable

from superset_bot.domain.progress import NO_PROGRESS, ProgressSnapshot
from superset_bot.frontends.slack.blocks.actions import cancel_button
from superset_bot.frontends.slack.blocks.coerce import as_int, num
from superset_bot.frontends.slack.blocks.figures import count, duration, stats
from superset_bot.frontends.slack.blocks.kit import (
    Block,
    Rendered,
    actions_block,
    context,
    fallback,
    fit,
    section,
)
from superset_bot.frontends.slack.blocks.task import state_emoji, state_label, task_context, task_id
from superset_bot.frontends.slack.blocks.text import (
    code_block,
    esc,
    esc_line,
    inline_code,
    mention_people,
    quote,
)
from superset_bot.store import (
    ACTIVE_STATES,
    CANCELLED,
    FAILED,
    FINISHED,
    MERGED,
    PREPARING,
    QUEUED,
    RUNNING,
    TIMED_OUT,
    Task,
)

STOPPABLE_STATES = frozenset({QUEUED, PREPARING, RUNNING})


def elapsed(task: Task, now: float) -> float:
    start = num(task.started_at) or num(task.created_at) or now
    end = now
    if task.state not in ACTIVE_STATES and num(task.finished_at):
        end = num(task.finished_at) or now
    if task.state == QUEUED:
        start = num(task.created_at) or now
    return max(0.0, end - start)


def headline(task: Task, progress: ProgressSnapshot, now: float, queue_position: int | None,
             scale: float = 1.0, title: str = "") -> str:
    """First lines of a task's card: state, time, what the agent is doing right now (after `title`)."""
    state = task.state
    took = duration(elapsed(task, now))
    emoji = f"{state_emoji(state)} {title} ·" if title else state_emoji(state)
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
        if progress.action:
            head += f"\n*Now:* {inline_code(progress.action, max(40, int(200 * scale)))}"
        elif progress.phase == "finishing":
            head += "\n_Wrapping up…_"
        elif progress.phase == "done":
            head += "\n_The agent has exited._"
        else:
            head += "\n_Starting the agent…_"
        if progress.is_error:
            head += "\n⚠️ The agent reported an error."
        return head
    head = f"{emoji} *{state_label(state).capitalize()}* · took {took}"
    if task.reason and state not in (FINISHED, MERGED):
        head += f"\n{mention_people(esc(task.reason, max(60, int(500 * scale))))}"
    return head


def progress_tail(progress: ProgressSnapshot) -> list[str]:
    return list(progress.tail[-200:])


def progress_context(task: Task, progress: ProgressSnapshot) -> list[str]:
    parts = stats(progress.tools_used, progress.tokens_in, progress.tokens_out, progress.cost_usd,
                  progress.cost_estimated_from)
    if progress.lines_seen:
        parts.append(count(progress.lines_seen, "line") + " of output")
    return [" · ".join(parts)] if parts else []


def denials_text(denials: Iterable[object], scale: float) -> str:
    """What the agent's permissions or sandbox refused, each with how to grant it ("" for none);
    `denials` is a progress snapshot's or a review's (which may hold anything)."""
    said = [d for d in denials if isinstance(d, str) and d.strip()]
    if not said:
        return ""
    n = max(1, int(5 * scale))
    lines = [f"• {esc(d, max(60, int(300 * scale)))}" for d in said[:n]]
    if len(said) > n:
        lines.append(f"_…and {len(said) - n:,} more_")
    return ":no_entry: *Refused by the agent's permissions*\n" + "\n".join(lines)


ROOT_TAIL_LINES = 8  # the channel is shared: the card shows a glimpse, the full log is on request
ROOT_TAIL_CHARS = 1500
TAIL_STATES = frozenset({QUEUED, PREPARING, RUNNING, FINISHED, FAILED, TIMED_OUT, CANCELLED})  # not once closed


def task_card(task: Task, progress: ProgressSnapshot | None = None, *, now: float,
              queue_position: int | None = None, note: str | None = None) -> Rendered:
    """A task's one live message: the root of its thread in the channel, kept current with chat.update.

    State, time, what the agent is doing, the prompt, who and where, tokens and cost, refused actions
    and the last lines of output; `note` (the latest step of the way, such as "Setup done") while the
    task is active; a Cancel button while it can still be stopped. Other milestones, the review and
    the outcome go in the thread below it.
    """
    p = progress if progress is not None else NO_PROGRESS
    tail = progress_tail(p)[-ROOT_TAIL_LINES:] if task.state in TAIL_STATES else []
    tid = task_id(task)

    def build(scale: float) -> list[Block]:
        prompt = quote(task.prompt, max(40, int(500 * scale)), max(2, int(8 * scale))) or ">_(no prompt)_"
        title = f"*Task {inline_code(tid, 40)}*"
        if task.race_label:  # an attempt of a race: its card is a reply in the race's thread
            title = f"*Attempt {esc_line(task.race_label, 4)}* · {inline_code(tid, 40)}"
        head = headline(task, p, now, queue_position, scale, title=title)
        blocks = [section(f"{head}\n{prompt}"),
                  context(*task_context(task), *progress_context(task, p))]
        if note and task.state in STOPPABLE_STATES:
            blocks.append(context(esc(note, max(60, int(300 * scale)))))
        denials = denials_text(p.denials, scale)
        if denials:
            blocks.append(section(denials))
        block = code_block(tail, max_chars=int(ROOT_TAIL_CHARS * scale))
        if block:
            blocks.append(section(block))
        if task.state in STOPPABLE_STATES:
            blocks.append(actions_block([cancel_button(task)]))
        return blocks

    who = f"Attempt {esc_line(task.race_label, 4)} ({esc_line(tid, 40)})" if task.race_label else f"Task {esc_line(tid, 40)}"
    text = f"{who} · {state_label(task.state)} · {duration(elapsed(task, now))}"
    if p.action and task.state == RUNNING:
        text += f" · {esc_line(p.action, 200)}"
    text += f": {esc_line(task.prompt, 200)}"
    return Rendered(fallback(text), fit(build))


def moved_card() -> Rendered:
    """What an older release's status card in the thread says once the root message took over."""
    text = "This task's status now shows on its first message, above."
    return Rendered(fallback(text), [context(f"_{text}_")])
