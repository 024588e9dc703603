"""What state follows an agent's exit: a pure decision over the exit and what the agent said.

The engine gathers the facts (how the process ended, the parsed progress, whether someone asked
for a cancel or the bot stopped the agent for a reason) and applies the answer; nothing here
touches processes, git or the store, so every rule is tested with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

from superset_bot.agents.formats import Progress
from superset_bot.agents.runner import ExitInfo
from superset_bot.store import CANCELLED, FAILED, FINISHED, TIMED_OUT


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None


def decide_exit(
    info: ExitInfo, progress: Progress, *, stop_reason: str | None = None, cancelled_by: str | None = None
) -> Outcome:
    """The state a run ends in, and the reason shown to people.

    `stop_reason` is set when the bot itself stopped the agent (a disk guard, or a model API
    failure the agent would only have retried); `cancelled_by` names who asked for a cancel.
    An agent that exits 0 after its model API failed, or whose result says it failed, has not
    finished: it failed, with the agent's own reason.
    """
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
