"""What a worker host's heartbeats carry, made from its engine's events: no processes, no server."""

from __future__ import annotations

import pytest

pytest.importorskip("temporalio")

from superset_bot.domain.events import Milestone, OutputLines, ProgressChanged, StateChanged  # noqa: E402
from superset_bot.domain.progress import ProgressSnapshot  # noqa: E402
from superset_bot.store import FINISHED, RUNNING, Task  # noqa: E402
from superset_bot.temporal import wire  # noqa: E402
from superset_bot.temporal.host import TurnRelay  # noqa: E402


def task(task_id: str = "abc123", **kw: object) -> Task:
    return Task(id=task_id, repo="demo", prompt="p", preset="edit", **kw)  # type: ignore[arg-type]


def test_a_beat_holds_milestones_progress_and_status_but_no_log_text() -> None:
    relay = TurnRelay("w1", "abc123", "act-1:1")
    assert relay.beat().status == "preparing"
    relay(Milestone(task(), "worktree_ready", "Worktree ready"))
    relay(StateChanged(task(state=RUNNING, pid=42), "preparing", "bot"))
    relay(OutputLines(task(), tuple(f"line {n} sk-secret" for n in range(30)), "agent", dropped=5))
    relay(OutputLines(task(), ("npm ci output",), "setup"))  # setup lines are not the agent's
    relay(ProgressChanged(task(), ProgressSnapshot(phase="working", tokens_in=10, tail=("line 29 sk-secret",),
                                                   final_text="All done: sk-secret", error="boom")))
    relay(Milestone(task("other1"), "worktree_ready", "someone else's"))  # another task's: ignored
    beat = relay.beat(log_pos=77)
    assert (beat.host, beat.status, beat.pid, beat.log_pos, beat.attempt) == ("w1", "running", 42, 77, "act-1:1")
    assert beat.lines_seen == 35  # how many, never what: the bot reads them from the host's log
    assert beat.milestones == [[1, "worktree_ready", "Worktree ready", True]]
    assert beat.progress["phase"] == "working" and beat.progress["tokens_in"] == 10
    assert "sk-secret" not in repr(beat) and "boom" not in repr(beat)
    assert not set(wire.TEXT_FIELDS) & set(beat.progress)
    relay(StateChanged(task(state=FINISHED), "running", "bot"))
    assert relay.beat().status == "finishing"


def test_milestones_are_numbered_and_bounded() -> None:
    relay = TurnRelay("w1", "abc123")
    for n in range(wire.MILESTONES_KEPT + 5):
        relay(Milestone(task(), "checks", f"step {n}", ok=n % 2 == 0))
    kept = relay.beat().milestones
    assert len(kept) == wire.MILESTONES_KEPT
    assert kept[-1] == [wire.MILESTONES_KEPT + 5, "checks", f"step {wire.MILESTONES_KEPT + 4}", True]
    relay.follow("new1")  # the host's own id for the task changed: its events count from now on
    relay(Milestone(task("new1"), "setup_done", "Setup done"))
    assert relay.beat().milestones[-1][1:] == ["setup_done", "Setup done", True]


def test_ids_and_queues() -> None:
    assert wire.turn_id("abc123", 2) == "turn-abc123-2"
    assert wire.host_queue("superset", "w1") == "superset.host.w1"
    assert wire.repo_queue("superset", "web") == "superset.repo.web"
