"""The buttons on task messages: the action ids Slack sends back when one is pressed, and each button
with its label, style and the confirmation in front of the ones that cannot be undone.

A button's value is the task id, exact (it is data Slack hands back, never shown).
"""

from __future__ import annotations

from superset_bot.frontends.slack.blocks.kit import Block, button, confirm_dialog
from superset_bot.frontends.slack.blocks.task import task_id
from superset_bot.frontends.slack.blocks.text import esc_line
from superset_bot.store import Task

ACTION_MERGE = "task_merge"
ACTION_DISCARD = "task_discard"
ACTION_DIFF = "task_diff"
ACTION_UPDATE = "task_update_base"
ACTION_KEEP = "task_keep"
ACTION_RETRY = "task_retry"
ACTION_CANCEL = "task_cancel"
ACTION_FIX_CI = "task_fix_ci"
ACTION_MOVE = "task_move"
ACTIONS = (ACTION_MERGE, ACTION_DISCARD, ACTION_DIFF, ACTION_UPDATE, ACTION_KEEP, ACTION_RETRY, ACTION_CANCEL,
           ACTION_FIX_CI, ACTION_MOVE)


def merge_button(task: Task, branch: object = None, base: object = None, pull: object = None,
                 method: object = None) -> Block:
    """Merge `branch` (the task's own by default) into `base`, after a confirmation; with `pull` (its
    label, "acme/web#12"), the pull request is merged on GitHub."""
    b = esc_line(branch or task.branch or "this task's branch", 100)
    target = esc_line(base or task.base_branch or "its base branch", 80)
    if task.race_label:  # an attempt of a race: merging it is picking it
        label = esc_line(task.race_label, 4)
        dialog = confirm_dialog(f"Pick attempt {label}?", f"Merge attempt {label} into {target}"
                                f"{' on GitHub' if pull else ''} and discard the race's other attempts? "
                                "Only one attempt of a race is ever merged.", "Pick it", style="primary")
        return button(f"Pick {label}", ACTION_MERGE, task_id(task), "primary", dialog)
    if pull:
        how = f" ({esc_line(method, 10)})" if method else ""
        dialog = confirm_dialog("Merge pull request?", f"Merge {esc_line(pull, 120)} into {target} on GitHub{how}? "
                                "The task's worktree is removed afterwards.", "Merge", style="primary")
        return button("Merge PR", ACTION_MERGE, task_id(task), "primary", dialog)
    dialog = confirm_dialog(
        "Merge task?",
        f'Merge "{b}" into {target}? The task\'s worktree is removed afterwards.',  # plain text: no code marks
        "Merge",
        style="primary",
    )
    return button("Merge", ACTION_MERGE, task_id(task), "primary", dialog)


def fix_ci_button(task: Task) -> Block:
    """Send the failing checks' output to the agent as a follow-up."""
    return button("Fix CI", ACTION_FIX_CI, task_id(task), "primary")


def update_button(task: Task) -> Block:
    """Bring the base branch into the task's branch, so a conflicted task can merge again."""
    return button("Update from base", ACTION_UPDATE, task_id(task), "primary")


def discard_button(task: Task, branch: object = None) -> Block:
    """Delete the task's worktree and `branch` (its own by default), after a confirmation."""
    b = esc_line(branch or task.branch or "its branch", 120)
    dialog = confirm_dialog(
        "Discard task?",
        f'Delete the worktree and the branch "{b}"? The agent\'s work is lost.',  # plain text: no code marks
        "Discard",
        style="danger",
    )
    return button("Discard", ACTION_DISCARD, task_id(task), "danger", dialog)


def diff_button(task: Task) -> Block:
    return button("View diff", ACTION_DIFF, task_id(task))


def cancel_button(task: Task) -> Block:
    """Stop a queued or running task, after a confirmation."""
    dialog = confirm_dialog("Cancel task?", f"Stop the agent working on task {esc_line(task_id(task), 40)}?",
                            "Stop it", "Keep running", style="danger")
    return button("Cancel", ACTION_CANCEL, task_id(task), "danger", dialog)


def keep_button(task: Task) -> Block:
    """Keep a stale worktree the scheduler would prune."""
    return button("Keep it", ACTION_KEEP, task_id(task), "primary")


def move_button(task: Task) -> Block:
    """Run the task's turn again on another worker host (its own is gone), after a confirmation."""
    dialog = confirm_dialog("Retry on another host?", "Start this turn again on another worker host, from the "
                            "branch as last pushed? What the agent did since on the silent host is not kept.",
                            "Retry elsewhere", "Wait for the host", style="primary")
    return button("Retry on another host", ACTION_MOVE, task_id(task), "primary", dialog)


def retry_button(task: Task) -> Block:
    """Run a failed task's prompt again."""
    return button("Retry", ACTION_RETRY, task_id(task), "primary")
