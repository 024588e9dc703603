"""A task's move to a new state: stored first, published only once stored, refused moves stay silent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from superset_bot.domain.events import EngineEvent, StateChanged
from superset_bot.engine.transitions import Transitions
from superset_bot.store import FINISHED, MERGED, MERGING, REVIEWABLE_STATES, RUNNING, Task


class FakeStore:
    """Holds tasks in a dict; `transition` moves one when its state is expected, like the real store."""

    def __init__(self, *tasks: Task) -> None:
        self.tasks = {t.id: t for t in tasks}
        self.moves: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = []

    async def get_task(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    async def transition(self, task_id: str, state: str, actor: str, *, expect: Iterable[str] | None = None,
                         detail: Mapping[str, Any] | None = None, **changes: Any) -> Task | None:
        task = self.tasks[task_id]
        if expect is not None and task.state not in set(expect):
            return None
        self.moves.append((task_id, state, actor, dict(detail or {}), changes))
        self.tasks[task_id] = replace(task, state=state, **changes)
        return self.tasks[task_id]


class FakePool:
    def __init__(self) -> None:
        self.poked: list[str] = []

    def poke(self, repo: str) -> None:
        self.poked.append(repo)


def rig(task: Task) -> tuple[Transitions, FakeStore, FakePool, list[EngineEvent]]:
    store, pool, published = FakeStore(task), FakePool(), []
    return Transitions(store, published.append, pool), store, pool, published  # type: ignore[arg-type]


def running() -> Task:
    return Task(id="t1", repo="demo", prompt="p", preset="x", state=RUNNING)


async def test_a_move_is_stored_then_published_with_the_state_it_left() -> None:
    store, pool = FakeStore(running()), FakePool()
    published: list[tuple[EngineEvent, str]] = []  # each event, with the state stored when it was published
    transitions = Transitions(store, lambda event: published.append((event, store.tasks["t1"].state)),
                              pool)  # type: ignore[arg-type]
    moved = await transitions.transition("t1", FINISHED, "superset-bot", expect={RUNNING}, exit_code=0)
    assert moved is not None and moved.state == FINISHED and moved.exit_code == 0
    assert published == [(StateChanged(moved, RUNNING, "superset-bot", None), FINISHED)]
    assert pool.poked == []


async def test_a_reason_goes_into_the_row_and_the_audit_detail() -> None:
    transitions, store, _, published = rig(running())
    await transitions.transition("t1", FINISHED, "U1", expect={RUNNING}, reason="done", detail={"run": 2})
    (_, _, actor, detail, changes) = store.moves[0]
    assert actor == "U1" and detail == {"run": 2, "reason": "done"} and changes == {"reason": "done"}
    assert isinstance(published[0], StateChanged) and published[0].reason == "done"
    await transitions.transition("t1", MERGING, "U1", expect=REVIEWABLE_STATES)
    assert store.moves[1][3] == {} and store.moves[1][4] == {"reason": None}  # no reason clears the old one


async def test_a_refused_move_changes_nothing_and_says_nothing() -> None:
    transitions, store, pool, published = rig(running())
    assert await transitions.transition("t1", MERGED, "U1", expect={MERGING}) is None
    assert store.moves == [] and published == [] and pool.poked == []


async def test_a_merge_pokes_the_warm_pool_of_its_repo() -> None:
    transitions, _, pool, _ = rig(replace(running(), state=MERGING))
    await transitions.transition("t1", MERGED, "U1", expect={MERGING})
    assert pool.poked == ["demo"]
