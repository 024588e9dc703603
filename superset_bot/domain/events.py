"""Typed events the engine publishes; front ends (console, Slack) render them.

Events carry the task as stored *after* the change, so a subscriber never has to ask again.
"""

from __future__ import annotations

from dataclasses import dataclass

from superset_bot.domain.progress import NO_PROGRESS, ProgressSnapshot
from superset_bot.domain.race import Race
from superset_bot.domain.review import Review
from superset_bot.domain.task import Task

HOST_LOST = "host_lost"  # Milestone.kind: a worker host running the task's agent stopped answering


@dataclass(frozen=True)
class EngineEvent:
    task: Task


@dataclass(frozen=True)
class StateChanged(EngineEvent):
    """A stored state transition (already written to the store when published)."""

    previous: str | None
    actor: str
    reason: str | None = None


@dataclass(frozen=True)
class QueuePosition(EngineEvent):
    """The task waits for a free agent slot; position 1 is next."""

    position: int


@dataclass(frozen=True)
class OutputLines(EngineEvent):
    """New output of setup or the agent, redacted; batched, and `dropped` lines were skipped."""

    lines: tuple[str, ...]
    source: str = "agent"  # "setup" | "agent" | "checks"
    dropped: int = 0


@dataclass(frozen=True)
class ProgressChanged(EngineEvent):
    """Throttled snapshot of the agent's progress (see agents.Progress.snapshot)."""

    progress: ProgressSnapshot = NO_PROGRESS


@dataclass(frozen=True)
class Milestone(EngineEvent):
    """Something a person following the task wants to hear about, as one sentence."""

    kind: str  # worktree_ready | setup_done | agent_started | checks | followup | plugin_failed | ...
    text: str
    ok: bool = True


@dataclass(frozen=True)
class ReviewReady(EngineEvent):
    """The agent's work is ready to review (the same Review the store holds as JSON)."""

    review: Review


@dataclass(frozen=True)
class ReviewRefreshed(EngineEvent):
    """An open review seen again after its base branch moved (another task merged): `review` replaces
    `previous` on the same review message, so nobody merges on what it said before."""

    review: Review
    previous: Review | None = None


@dataclass(frozen=True)
class PruneWarning(EngineEvent):
    """The task's worktree will be pruned after `grace_s` unless someone keeps it."""

    grace_s: float = 0.0


@dataclass(frozen=True)
class RaceChanged(EngineEvent):
    """A race's own state moved (started, picking, picked, reopened, discarded); `task` is the attempt it
    concerns (the winner of a pick), `race` the race as stored after the change."""

    race: Race
