"""A task's states, their groups, and the one table of which state may follow which.

The store refuses any move the table lacks (`Store.transition`), so a bug or a race that would
put a task where it cannot be cannot write it. The table is what the engine does, no more:

- queued -> preparing (a new task gets its worktree) or running (a follow-up: the worktree exists);
  preparing -> running; either of them -> cancelled (a cancel before the agent started) or failed
  (worktree, setup or agent start failed, a restart or reconcile found it stuck, an internal error);
- running -> finished / failed / cancelled / timed_out, as the agent's exit decides;
- a reviewable task -> queued (a follow-up), merging or discarding (the claims a button takes so
  it acts once), or pruned (idle, over the disk budget, or its worktree vanished);
- merging -> merged, or back to any reviewable state (the merge was refused, interrupted, or
  settled from git after a restart); discarding -> discarded (a discard is only ever finished);
- merged, discarded and pruned are final.

The enum members are `str`, so `task.state == "queued"` and `"queued" in ACTIVE` hold, and the
database stores the value string (`encode_state` / `decode_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class TaskState(StrEnum):  # a str and an Enum: str() and f-strings give the value
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    MERGING = "merging"  # a claim: a merge works on the task
    MERGED = "merged"
    DISCARDING = "discarding"  # a claim: a discard works on the task
    DISCARDED = "discarded"
    PRUNED = "pruned"

    @property
    def phrase(self) -> str:
        """The state as people read it in "This task was ___ for 20m": "being merged", "queued"."""
        return _PHRASES.get(self, self.value)

    @property
    def successors(self) -> frozenset[TaskState]:
        """The states this one may move to (empty for a closed state)."""
        return TRANSITIONS[self]

    def may_become(self, target: TaskState | str) -> bool:
        return target in TRANSITIONS[self]


ACTIVE = frozenset({TaskState.QUEUED, TaskState.PREPARING, TaskState.RUNNING})
REVIEWABLE = frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT})
CLOSED = frozenset({TaskState.MERGED, TaskState.DISCARDED, TaskState.PRUNED})
TRANSIENT = frozenset({TaskState.MERGING, TaskState.DISCARDING})  # short claims that make a button act once
ALL = frozenset(TaskState)

_PHRASES = {TaskState.MERGING: "being merged", TaskState.DISCARDING: "being discarded"}

# For each state, the states it may move to. Keep docs/ARCHITECTURE.md's copy in step.
TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = MappingProxyType({
    TaskState.QUEUED: frozenset({TaskState.PREPARING, TaskState.RUNNING, TaskState.CANCELLED, TaskState.FAILED}),
    TaskState.PREPARING: frozenset({TaskState.RUNNING, TaskState.CANCELLED, TaskState.FAILED}),
    TaskState.RUNNING: frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT}),
    **{state: frozenset({TaskState.QUEUED, TaskState.MERGING, TaskState.DISCARDING, TaskState.PRUNED})
       for state in sorted(REVIEWABLE)},
    TaskState.MERGING: frozenset({TaskState.MERGED, *REVIEWABLE}),
    TaskState.DISCARDING: frozenset({TaskState.DISCARDED}),
    **{state: frozenset() for state in sorted(CLOSED)},
})


def predecessors(target: TaskState | str) -> frozenset[TaskState]:
    """The states that may move to `target`: the widest sensible `expect=` for a move there."""
    return frozenset(state for state, nexts in TRANSITIONS.items() if target in nexts)


class UnknownState(ValueError):
    """A state string that is none of TaskState's values (a newer bot wrote it, or a hand edit)."""


def encode_state(state: TaskState | str) -> str:
    """The string the database stores for a state."""
    return decode_state(state).value


def decode_state(value: object, task_id: str | None = None) -> TaskState:
    """The state a stored string names; UnknownState (naming the task, if given) for anything else."""
    if isinstance(value, TaskState):
        return value
    if isinstance(value, str) and value in _BY_VALUE:
        return _BY_VALUE[value]
    whose = f"task {task_id} has " if task_id else ""
    known = ", ".join(s.value for s in TaskState)
    raise UnknownState(f"{whose}unknown state {value!r} (known states: {known})")


_BY_VALUE = {s.value: s for s in TaskState}
