"""Progress: denials, errors and carried state survive a snapshot, so a restart keeps them."""

from __future__ import annotations

import json

from superset_bot.agents.formats import AgentEvent, Progress
from superset_bot.agents.formats.progress import DENIALS_MAX
from superset_bot.domain.progress import ProgressSnapshot


def stored(progress: Progress) -> ProgressSnapshot:
    """What a restart reads back of `progress` from the store."""
    return ProgressSnapshot.from_dict(json.loads(json.dumps(progress.snapshot().to_dict())))


def test_denials_are_distinct_bounded_and_survive_a_snapshot() -> None:
    progress = Progress()
    for i in range(DENIALS_MAX + 5):
        progress.apply(AgentEvent(kind="denied", text=f"denied: `cmd {i}` needs approval", denied=f"Bash: cmd {i}"))
        progress.apply(AgentEvent(kind="denied", text=f"denied: `cmd {i}` needs approval", denied=f"Bash: cmd {i}"))
    assert len(progress.denials) == DENIALS_MAX
    assert progress.denials[0] == "denied: `cmd 0` needs approval"
    again = Progress.from_snapshot(stored(progress))
    assert again.denials == progress.denials


def test_fatal_sets_the_error_and_carry_accumulates() -> None:
    progress = Progress()
    progress.apply(AgentEvent(kind="usage", text="", carry={"thread_tokens_in": 10}))
    progress.apply(AgentEvent(kind="retry", text="API error 401, retry 1/10", fatal=True))
    progress.apply(AgentEvent(kind="usage", text="", carry={"thread_tokens_out": 3}))
    assert progress.fatal and progress.is_error
    assert progress.error == "API error 401, retry 1/10"
    assert progress.carry == {"thread_tokens_in": 10, "thread_tokens_out": 3}
    progress.carried = {"thread_tokens_in": 4}
    again = Progress.from_snapshot(stored(progress))
    assert (again.fatal, again.error, again.carry, again.carried) == (
        True, "API error 401, retry 1/10", {"thread_tokens_in": 10, "thread_tokens_out": 3}, {"thread_tokens_in": 4})


def test_an_old_snapshot_without_the_new_fields_still_loads() -> None:
    old = {"phase": "working", "tokens_in": 5, "denials": "not a list", "carry": [1]}
    again = Progress.from_snapshot(ProgressSnapshot.from_dict(old))
    assert (again.denials, again.error, again.fatal, again.carry, again.tokens_in) == ([], None, False, {}, 5)
