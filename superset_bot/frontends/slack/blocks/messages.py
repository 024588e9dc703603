"""Answers to commands, shown only to the person who asked: help, errors and the status of one task."""

from __future__ import annotations

from collections.abc import Sequence

from superset_bot.domain.commands import SPECS, usage
from superset_bot.domain.progress import NO_PROGRESS, ProgressSnapshot
from superset_bot.frontends.slack.blocks.card import elapsed, headline, progress_context, progress_tail
from superset_bot.frontends.slack.blocks.coerce import num
from superset_bot.frontends.slack.blocks.figures import duration
from superset_bot.frontends.slack.blocks.kit import (
    Block,
    Rendered,
    chunk_sections,
    context,
    fallback,
    fit,
    section,
)
from superset_bot.frontends.slack.blocks.review import review_line
from superset_bot.frontends.slack.blocks.task import state_emoji, state_label, task_context, task_id
from superset_bot.frontends.slack.blocks.text import (
    code_block,
    esc,
    esc_line,
    escape,
    inline_code,
    link,
    one_line,
    quote,
    slack_date,
)
from superset_bot.store import ACTIVE_STATES, Task


def help_message(allowed: Sequence[str], prefix: str = "/superset") -> Rendered:
    """The commands this person may use, one per line, in the grammar's order."""
    names = [spec for spec in SPECS if spec in set(allowed)]
    safe_prefix = one_line(prefix, 40).replace("`", "") or "/superset"
    if not names:
        text = "You don't have access to any superset-bot commands. Ask an admin to add you."
        return Rendered(text, [section(f":lock: {text}")])
    lines = [f"{escape(usage(name, safe_prefix))} – {escape(SPECS[name].help)}" for name in names]
    blocks = [section("*superset-bot commands*"), *chunk_sections(lines)]
    text = "superset-bot commands: " + ", ".join(names)
    return Rendered(fallback(text), blocks)


def error_message(text: str) -> Rendered:
    """An ephemeral error: the sentence and usage line from CommandError/UserError, backticks kept."""
    body = esc(text, 2800).strip() or "Something went wrong."
    return Rendered(fallback(body), [section(f":warning: {body}")])



def status_message(task: Task, progress: ProgressSnapshot | None, permalink: str | None, *, now: float,
                   queue_position: int | None) -> Rendered:
    """The `status ID` answer (ephemeral): the task, its progress and a link to its thread."""
    p = progress if progress is not None else NO_PROGRESS
    tid = task_id(task)
    tail = progress_tail(p)

    def build(scale: float) -> list[Block]:
        head = f"{state_emoji(task.state)} *Task {inline_code(tid, 40)}* · {state_label(task.state)}"
        prompt = quote(task.prompt, max(40, int(300 * scale)), max(2, int(5 * scale)))
        blocks = [section(f"{head}\n{prompt}" if prompt else head)]
        ctx = task_context(task)
        created = num(task.created_at)
        if created:
            ctx.append(f"created {slack_date(created)}")
        blocks.append(context(" · ".join(ctx)))
        body = headline(task, p, now, queue_position, scale)
        review = review_line(task)
        if review and task.state not in ACTIVE_STATES:
            body += "\n" + review
        blocks.append(section(body))
        stats = progress_context(task, p)
        if stats:
            blocks.append(context(*stats))
        block = code_block(tail, max_chars=int(1500 * scale))
        if block and task.state in ACTIVE_STATES:
            blocks.append(section(block))
        thread = link(permalink, "Open the task's thread")
        if thread:
            blocks.append(context(thread))
        return blocks

    text = f"Task {esc_line(tid, 40)}: {state_label(task.state)} · {duration(elapsed(task, now))}"
    return Rendered(fallback(text), fit(build))
