"""What state follows an agent's exit: a pure decision over the exit and what the agent said.

The engine gathers the facts (how the process ended, the parsed progress, whether someone asked
for a cancel or the bot stopped the agent for a reason, how full the worktree's disk is) and
applies the answer, state and reason; nothing here touches processes, git or the store, so
every rule is tested with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

from superset_bot.agents.formats import Progress
from superset_bot.agents.runner import ExitInfo
from superset_bot.store import CANCELLED, FAILED, FINISHED, TIMED_OUT
from superset_bot.units import format_size

DISK_FULL_BELOW = 1024 * 1024  # bytes free under which nothing fits
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None


@dataclass(frozen=True)
class Disk:
    """The disk holding the run's worktree: its free bytes, None when they could not be measured."""

    free: int | None


def decide_exit(
    info: ExitInfo,
    progress: Progress,
    *,
    stop_reason: str | None = None,
    cancelled_by: str | None = None,
    disk: Disk | None = None,
) -> Outcome:
    """The state a run ends in, and the reason shown to people.

    `stop_reason` is set when the bot itself stopped the agent (a disk guard, or a model API
    failure the agent would only have retried); `cancelled_by` names who asked for a cancel.
    An agent that exits 0 after its model API failed, or whose result says it failed, has not
    finished: it failed, with the agent's own reason.

    `disk` is the disk of the run's worktree (None: the run had no worktree). A full one makes
    agents fail in their own words, so a run that did not finish says what the person must fix.
    A run log that could not be written is said too: later output was lost.
    """
    outcome = _state_after(info, progress, stop_reason, cancelled_by)
    reason = outcome.reason
    if disk is not None and outcome.state != FINISHED and _is_full(disk, progress):
        shown = f" ({format_size(disk.free)} free)" if disk.free is not None else ""
        reason = (f"{reason or outcome.state}; the disk holding the worktree is full{shown}: "
                  "free some space, then follow up or spawn again")
    if info.log_error:
        lost = f"the run log could not be written ({info.log_error}), so later output was not kept"
        reason = f"{reason}; {lost}" if reason else lost
    return Outcome(outcome.state, reason)


def _is_full(disk: Disk, progress: Progress) -> bool:
    said_so = any(words in line for line in progress.tail for words in DISK_FULL_WORDS)
    return said_so or (disk.free is not None and disk.free < DISK_FULL_BELOW)


def _state_after(info: ExitInfo, progress: Progress, stop_reason: str | None, cancelled_by: str | None) -> Outcome:
    if info.reason == "exited" and info.code == 0:
        if progress.is_error:
            return Outcome(FAILED, progress.error or "the agent reported an error")
        return Outcome(FINISHED, None)
    if info.reason == "exited":
        detail = f"the agent exited with code {info.code}"
        return Outcome(FAILED, f"{progress.error} ({detail})" if progress.error else detail)
    if info.reason == "timeout":
        return Outcome(TIMED_OUT, info.detail)
    if info.reason == "cancelled" and stop_reason is not None:
        return Outcome(FAILED, stop_reason)
    if info.reason == "cancelled":
        return Outcome(CANCELLED, f"cancelled by {cancelled_by or 'request'}")
    return Outcome(FAILED, progress.error or info.detail)
