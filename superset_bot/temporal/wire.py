"""What the bot and its worker hosts say to each other through Temporal, in one place: the names of
workflows, activities, signals and queues, the ids of workflows, and the plain dataclasses they carry
(Temporal's JSON converter encodes them). Imported by workflow code: nothing here does I/O.

No log text goes into a workflow's input, result or heartbeats (the workflow's history keeps the
first two for good, and a heartbeat's last details when an attempt times out): they carry the exit,
the progress figures, the agent's current step and the milestones. The agent's lines, its final
message and the checks' output are read by the bot with standalone activities (`READ_LOG`,
`READ_TURN`), which belong to no workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TURN_WORKFLOW = "superset.turn"  # one run of a task's agent on a worker host: prepare (first turn), run, push
DROP_WORKFLOW = "superset.drop"  # a closed task's worktree removed from its host

PLACE = "superset.place"  # on a repo's queue, then the shared one: which host takes a new turn
RUN_TURN = "superset.run_turn"  # on a host's queue: the turn itself, heartbeating its progress
DROP = "superset.drop_worktree"  # on a host's queue: remove a task's worktree and branch there
# on a host's queue, started by the bot as a standalone activity (no workflow: the log text it returns
# is in no workflow's history): a piece of a task's log
READ_LOG = "superset.read_log"
READ_TURN = "superset.read_turn"  # the same: how the task's last turn ended there, with its text (final message, checks)

TEXT_FIELDS = ("tail", "final_text", "error", "denials")  # the parts of a progress snapshot that are log text


def bare(progress: dict[str, Any]) -> dict[str, Any]:
    """A progress snapshot (`ProgressSnapshot.to_dict()`) without its log text: for heartbeats and results."""
    return {key: value for key, value in progress.items() if key not in TEXT_FIELDS}

CANCEL_SIGNAL = "cancel"  # (actor) stop the turn's agent; the turn ends as cancelled
ELSEWHERE_SIGNAL = "retry_elsewhere"  # the turn's host is gone: run the turn again on another one

MILESTONES_KEPT = 40  # milestones of one turn a heartbeat or result carries


def host_queue(queue: str, host: str) -> str:
    """The task queue only `host` serves: work on the worktrees it holds."""
    return f"{queue}.host.{host}"


def repo_queue(queue: str, repo: str) -> str:
    """The task queue the hosts holding a clone of `repo` serve: placement asks them first."""
    return f"{queue}.repo.{repo}"


def turn_id(task_id: str, run: int) -> str:
    """The workflow id of the task's run number `run`: one workflow per turn, found again after a restart."""
    return f"turn-{task_id}-{run}"


def drop_id(task_id: str, host: str) -> str:
    return f"drop-{task_id}-{host}"


@dataclass
class TurnInput:
    """One turn of a task's agent, as the bot sends it."""

    task_id: str
    run: int
    repo: str
    remote_url: str  # where the host clones from and pushes the task's branch to
    prompt: str  # the task's own prompt
    preset: str
    requester: str
    branch: str  # the task's branch, on the remote
    base_branch: str
    base_commit: str  # what the task's review compares against
    start: str  # the commit the turn starts from: the base for a first turn, else the branch as last pushed
    followup: str | None = None  # the instruction of a follow-up turn
    session_id: str | None = None  # the agent's session, resumed on the host that holds it
    host: str | None = None  # the host holding the worktree (a follow-up goes there); None: place it
    avoid: list[str] = field(default_factory=list)  # hosts a placement skips
    heartbeat_s: float = 10.0


@dataclass
class PlaceInput:
    repo: str
    avoid: list[str] = field(default_factory=list)


@dataclass
class Beat:
    """A heartbeat of a running turn: what the thread shows while the agent works."""

    host: str
    status: str  # preparing | running | finishing
    pid: int | None = None
    log_pos: int = 0
    lines_seen: int = 0  # how many lines the agent has written in this attempt (the bot reads new ones)
    milestones: list[list[Any]] = field(default_factory=list)  # [number, kind, text, ok], the last ones
    progress: dict[str, Any] = field(default_factory=dict)  # bare(ProgressSnapshot.to_dict())
    attempt: str = ""  # which attempt of the turn ("activity id:attempt"): milestones and lines count in it


@dataclass
class TurnResult:
    """How a turn ended on its host; its work is on the remote's `branch` at `head`."""

    host: str
    state: str  # the task state the turn ended in: finished, failed, cancelled, timed_out
    reason: str | None = None
    exit_code: int | None = None
    head: str | None = None  # the branch's commit as pushed; None: nothing pushed (it never got a worktree)
    pushed: str | None = None  # why nothing was pushed, when it was not
    progress: dict[str, Any] = field(default_factory=dict)  # bare: READ_TURN has the rest
    session_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    milestones: list[list[Any]] = field(default_factory=list)
    attempt: str = ""


@dataclass
class LogRequest:
    task_id: str  # the bot's id of the task; the host reads its own last run of it
    offset: int
    limit: int
    follow: bool = False  # from the last `limit` bytes when `offset` is further behind (following a run)
    whole: bool = False  # whole lines only: a line being written is left for the next read


@dataclass
class TurnDetails:
    """READ_TURN's answer: the text of how the task's last turn on a host ended."""

    progress: dict[str, Any] = field(default_factory=dict)  # the whole snapshot, final message and tail too
    checks: dict[str, Any] | None = None  # the review's checks view


@dataclass
class DropInput:
    task_id: str
    host: str
