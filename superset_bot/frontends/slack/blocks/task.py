"""How a task shows on every surface: its id, its state's emoji and label, and its context line."""

from __future__ import annotations

from superset_bot.frontends.slack.blocks.text import esc_line, inline_code, mention
from superset_bot.store import (
    CANCELLED,
    DISCARDED,
    DISCARDING,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    PREPARING,
    PRUNED,
    QUEUED,
    RUNNING,
    TIMED_OUT,
    Task,
)

STATE_EMOJI: dict[str, str] = {
    QUEUED: "hourglass_flowing_sand",
    PREPARING: "gear",
    RUNNING: "runner",
    FINISHED: "white_check_mark",
    FAILED: "x",
    CANCELLED: "no_entry_sign",
    TIMED_OUT: "alarm_clock",
    MERGING: "hourglass",
    MERGED: "twisted_rightwards_arrows",
    DISCARDING: "hourglass",
    DISCARDED: "wastebasket",
    PRUNED: "broom",
}
UNKNOWN_EMOJI = "grey_question"

STATE_LABEL: dict[str, str] = {
    QUEUED: "queued",
    PREPARING: "preparing",
    RUNNING: "running",
    FINISHED: "finished",
    FAILED: "failed",
    CANCELLED: "cancelled",
    TIMED_OUT: "timed out",
    MERGING: "merging",
    MERGED: "merged",
    DISCARDING: "discarding",
    DISCARDED: "discarded",
    PRUNED: "pruned",
}


def state_emoji(state: object) -> str:
    return f":{STATE_EMOJI.get(state, UNKNOWN_EMOJI) if isinstance(state, str) else UNKNOWN_EMOJI}:"


def state_label(state: object) -> str:
    if isinstance(state, str) and state in STATE_LABEL:
        return STATE_LABEL[state]
    return esc_line(state, 30) or "unknown"


def task_id(task: Task) -> str:
    return task.id if isinstance(task.id, str) else str(task.id)


def task_context(task: Task) -> list[str]:
    """The context items under a task's head: repo, branch, preset and who asked."""
    branch = f"branch {inline_code(task.branch, 120)}" if task.branch else "branch pending"
    return [
        f"repo {inline_code(task.repo, 80)}",
        branch,
        f"preset {inline_code(task.preset, 60)}",
        f"by {mention(task.requester)}",
    ]
