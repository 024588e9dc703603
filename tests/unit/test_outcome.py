"""The state that follows an agent's exit, decided from plain values (no processes)."""

from __future__ import annotations

from superset_bot.agents.formats import AgentEvent, Progress
from superset_bot.agents.runner import ExitInfo
from superset_bot.engine.outcome import Disk, decide_exit
from superset_bot.store import CANCELLED, FAILED, FINISHED, TIMED_OUT


def exited(code: int | None, reason: str = "exited", detail: str = "") -> ExitInfo:
    return ExitInfo(code=code, signal=None, reason=reason, detail=detail, ended_at=0.0)


def said(*events: AgentEvent) -> Progress:
    progress = Progress()
    for event in events:
        progress.apply(event)
    return progress


def test_a_clean_exit_with_a_good_result_is_finished() -> None:
    outcome = decide_exit(exited(0), said(AgentEvent(kind="result", text="Done")))
    assert (outcome.state, outcome.reason) == (FINISHED, None)


def test_exit_zero_after_the_model_api_failed_is_failed_with_the_agents_reason() -> None:
    progress = said(AgentEvent(kind="result", text="Failed: API error 500 (internal server error)", is_error=True))
    outcome = decide_exit(exited(0), progress)
    assert outcome.state == FAILED
    assert outcome.reason == "Failed: API error 500 (internal server error)"


def test_a_nonzero_exit_keeps_the_agents_own_reason_and_the_code() -> None:
    progress = said(AgentEvent(kind="result", text="no rollout found for session abc", is_error=True))
    outcome = decide_exit(exited(1), progress)
    assert outcome.state == FAILED
    assert outcome.reason == "no rollout found for session abc (the agent exited with code 1)"
    assert decide_exit(exited(2), Progress()).reason == "the agent exited with code 2"


def test_a_stop_by_the_bot_fails_with_its_reason_and_a_cancel_names_who() -> None:
    stopped = decide_exit(exited(None, "cancelled"), Progress(), stop_reason="the model API refused the key (401)")
    assert (stopped.state, stopped.reason) == (FAILED, "the model API refused the key (401)")
    cancelled = decide_exit(exited(None, "cancelled"), Progress(), cancelled_by="U123")
    assert (cancelled.state, cancelled.reason) == (CANCELLED, "cancelled by U123")


def test_timeouts_and_lost_supervisors() -> None:
    assert decide_exit(exited(None, "timeout", "timed out after 30m"), Progress()).state == TIMED_OUT
    lost = decide_exit(exited(None, "lost", "the supervisor died"), Progress())
    assert (lost.state, lost.reason) == (FAILED, "the supervisor died")


def test_a_fatal_event_fails_even_a_run_whose_result_looked_fine() -> None:
    progress = said(AgentEvent(kind="retry", text="API error 401, retry 1/10", api_status=401, fatal=True),
                    AgentEvent(kind="result", text="Done"))
    outcome = decide_exit(exited(0), progress)
    assert (outcome.state, outcome.reason) == (FAILED, "API error 401, retry 1/10")


def test_a_run_that_did_not_finish_on_a_full_disk_says_what_to_fix() -> None:
    fix = "free some space, then follow up or spawn again"
    words = said(AgentEvent(kind="text", text="write failed: No space left on device"))
    outcome = decide_exit(exited(1), words, disk=Disk(free=5 * 1024**3))
    assert outcome.state == FAILED
    assert outcome.reason == f"the agent exited with code 1; the disk holding the worktree is full (5.0 GiB free): {fix}"
    nearly_none = decide_exit(exited(2), Progress(), disk=Disk(free=512))
    assert nearly_none.reason == f"the agent exited with code 2; the disk holding the worktree is full (512 B free): {fix}"
    quota = said(AgentEvent(kind="error", text="Disk quota exceeded"))
    unmeasured = decide_exit(exited(None, "timeout", "timed out after 30m"), quota, disk=Disk(free=None))
    assert (unmeasured.state, unmeasured.reason) == (TIMED_OUT, f"timed out after 30m; the disk holding the worktree is full: {fix}")
    no_reason = decide_exit(exited(None, "lost", ""), Progress(), disk=Disk(free=0))
    assert no_reason.reason == f"failed; the disk holding the worktree is full (0 B free): {fix}"


def test_a_full_disk_changes_nothing_for_a_finished_run_or_one_without_a_worktree() -> None:
    words = said(AgentEvent(kind="text", text="No space left on device"), AgentEvent(kind="result", text="Done"))
    assert decide_exit(exited(0), words, disk=Disk(free=0)) == decide_exit(exited(0), words)
    assert decide_exit(exited(1), words, disk=None).reason == "the agent exited with code 1"
    assert decide_exit(exited(1), Progress(), disk=Disk(free=10 * 1024**2)).reason == "the agent exited with code 1"


def test_a_run_log_that_could_not_be_written_is_said_after_the_reason() -> None:
    lost = "the run log could not be written (disk full), so later output was not kept"
    broken = ExitInfo(code=0, signal=None, reason="exited", detail="", ended_at=0.0, log_error="disk full")
    finished = decide_exit(broken, said(AgentEvent(kind="result", text="Done")))
    assert (finished.state, finished.reason) == (FINISHED, lost)
    failed = ExitInfo(code=3, signal=None, reason="exited", detail="", ended_at=0.0, log_error="disk full")
    assert decide_exit(failed, Progress()).reason == f"the agent exited with code 3; {lost}"
