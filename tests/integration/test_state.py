"""The task state machine: the transition table as data, the store enforcing it, and the codecs."""

from __future__ import annotations

import ast
import itertools
import json
import logging
import sqlite3
from collections import deque
from pathlib import Path

import pytest

import superset_bot
from superset_bot import store as store_module
from superset_bot.domain.progress import NO_PROGRESS, ProgressSnapshot
from superset_bot.domain.review import Review
from superset_bot.domain.state import (
    ACTIVE,
    ALL,
    CLOSED,
    REVIEWABLE,
    TRANSIENT,
    TRANSITIONS,
    TaskState,
    UnknownState,
    decode_state,
    encode_state,
    predecessors,
)
from superset_bot.domain.task import Task, decode_progress, decode_review, encode_progress, encode_review
from superset_bot.store import CorruptTask, IllegalTransition, Store, StoreError

PACKAGE = Path(superset_bot.__file__).parent


def reachable(start: TaskState) -> set[TaskState]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# the table as pure data


def test_every_state_has_a_row_and_the_groups_split_the_states() -> None:
    assert set(TRANSITIONS) == set(TaskState) == ALL
    assert all(nexts <= ALL for nexts in TRANSITIONS.values())
    groups = (ACTIVE, REVIEWABLE, CLOSED, TRANSIENT)
    assert sum(len(g) for g in groups) == len(ALL) and frozenset().union(*groups) == ALL


def test_every_state_is_reachable_from_queued() -> None:
    assert reachable(TaskState.QUEUED) == ALL


def test_closed_states_are_terminal_and_every_other_state_can_close() -> None:
    for state in TaskState:
        if state in CLOSED:
            assert TRANSITIONS[state] == frozenset(), state
        else:
            assert TRANSITIONS[state], f"{state} is a dead end"
            assert reachable(state) & CLOSED, f"{state} can never close"


def test_no_state_moves_to_itself() -> None:
    assert all(state not in nexts for state, nexts in TRANSITIONS.items())


def test_transient_claims_go_back_or_forward_and_come_only_from_review() -> None:
    for claim in TRANSIENT:
        assert predecessors(claim) == REVIEWABLE  # a button claims a task awaiting review, nothing else
        assert TRANSITIONS[claim] <= REVIEWABLE | CLOSED  # back to where it was, or on to closed
        assert TRANSITIONS[claim] & CLOSED
    # a refused or interrupted merge goes back to whatever state it was claimed from
    assert TRANSITIONS[TaskState.MERGING] == REVIEWABLE | {TaskState.MERGED}
    assert TRANSITIONS[TaskState.DISCARDING] == {TaskState.DISCARDED}


def test_active_states_move_only_forward_and_review_only_to_claims_followups_or_prune() -> None:
    assert TRANSITIONS[TaskState.RUNNING] == REVIEWABLE
    for state in (TaskState.QUEUED, TaskState.PREPARING):
        assert TRANSITIONS[state] <= ACTIVE | REVIEWABLE and TaskState.FINISHED not in TRANSITIONS[state]
    for state in REVIEWABLE:
        assert TRANSITIONS[state] == {TaskState.QUEUED, TaskState.MERGING, TaskState.DISCARDING, TaskState.PRUNED}


def test_members_are_their_strings_and_the_old_names_stay() -> None:
    assert TaskState.QUEUED == "queued" and "timed_out" in REVIEWABLE and hash(TaskState.MERGED) == hash("merged")
    assert f"{TaskState.TIMED_OUT:<10}|" == "timed_out |" and str(TaskState.RUNNING) == "running"
    assert json.dumps({"state": TaskState.FAILED}) == '{"state": "failed"}'
    for state in TaskState:
        assert getattr(store_module, state.name) is state
    assert store_module.ACTIVE_STATES == ACTIVE and store_module.REVIEWABLE_STATES == REVIEWABLE
    assert store_module.CLOSED_STATES == CLOSED and store_module.ALL_STATES == ALL
    assert store_module.Task is Task


def test_state_codec() -> None:
    assert all(decode_state(encode_state(s)) is s for s in TaskState)
    assert decode_state("merging") is TaskState.MERGING and type(encode_state(TaskState.MERGED)) is str
    with pytest.raises(UnknownState, match="task abc234 has unknown state 'paused'"):
        decode_state("paused", "abc234")
    with pytest.raises(UnknownState):
        decode_state(None)


# the store enforces the table


async def test_the_store_takes_exactly_the_tables_moves(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        for n, (before, after) in enumerate(itertools.product(TaskState, repeat=2)):
            task = await store.create_task(Task(id=f"t{n:03d}x", repo="demo", prompt="p", preset="x", state=before), "U1")
            if after in TRANSITIONS[before]:
                moved = await store.transition(task.id, after, "U1")
                assert moved is not None and moved.state is after, (before, after)
                assert (await store.events(task.id))[-1].detail["from"] == before.value
                continue
            with pytest.raises(IllegalTransition) as refused:
                await store.transition(task.id, after, "U1", expect={before}, reason="should not stick")
            assert (refused.value.task_id, refused.value.previous, refused.value.state) == (task.id, before, after)
            assert f"task {task.id} cannot move from {before} to {after}" in str(refused.value)
            # nothing was written: not the state, not the other fields, not the audit log
            assert await store.get_task(task.id) == task
            assert [e.action for e in await store.events(task.id)] == ["created"]
    finally:
        await store.close()


async def test_expect_is_checked_before_the_table(tmp_path: Path) -> None:
    # a lost race (a second click on Merge after the merge) answers None, as before; only a move
    # that passes the caller's guard and still has no arrow is a bug worth raising
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        await store.create_task(Task(id="done01", repo="demo", prompt="p", preset="x", state=TaskState.MERGED), "U1")
        assert await store.transition("done01", TaskState.MERGING, "U2", expect=REVIEWABLE) is None
        with pytest.raises(IllegalTransition):
            await store.transition("done01", TaskState.MERGING, "U2")
        with pytest.raises(StoreError, match="unknown state 'paused'"):
            await store.transition("done01", "paused", "U2")
        with pytest.raises(StoreError, match="no task nope99"):
            await store.transition("nope99", TaskState.QUEUED, "U2")
    finally:
        await store.close()


async def test_a_bad_state_in_the_database_is_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    try:
        await store.create_task(Task(id="good01", repo="demo", prompt="p", preset="x"), "U1")
        await store.create_task(Task(id="bad001", repo="demo", prompt="p", preset="x"), "U1")
        with sqlite3.connect(path) as db:
            db.execute("UPDATE tasks SET state = 'paused' WHERE id = 'bad001'")
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT state FROM tasks WHERE id = 'good01'").fetchone() == ("queued",)
        assert (await store.get_task("good01")) is not None
        for read in (store.get_task("bad001"),
                     store.transition("bad001", TaskState.PREPARING, "U1", expect={TaskState.QUEUED}),
                     store.update_task("bad001", reason="x")):
            with pytest.raises(CorruptTask, match="task bad001 has unknown state 'paused'"):
                await read
        # a listing (housekeeping, the digest, `list`) skips the row it cannot read and says so
        with caplog.at_level(logging.ERROR, logger="superset_bot.store"):
            assert [t.id for t in await store.list_tasks()] == ["good01"]
        assert any("task bad001 has unknown state 'paused'" in r.getMessage() for r in caplog.records)
        assert issubclass(CorruptTask, StoreError)
        # nor is one written: a row the bot could not read back
        with pytest.raises(StoreError, match="task new001 has unknown state 'paused'"):
            await store.create_task(Task(id="new001", repo="demo", prompt="p", preset="x",
                                         state="paused"), "U1")  # type: ignore[arg-type]
        assert await store.get_task("new001") is None
        # a plain string naming a state is stored, and read back, as that state
        made = await store.create_task(Task(id="new002", repo="demo", prompt="p", preset="x",
                                            state="finished"), "U1")  # type: ignore[arg-type]
        assert made.state is TaskState.FINISHED and (await store.get_task("new002")).state is TaskState.FINISHED
    finally:
        await store.close()


# the code that moves tasks


def _calls_that_move_tasks() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("transition", "_transition"):
                found.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", node))
    return found


def _states_named(node: ast.expr) -> frozenset[TaskState] | None:
    """The states an expression names, when it is made of the store's constants only."""
    if isinstance(node, ast.Name) and isinstance(getattr(store_module, node.id, None), frozenset | TaskState):
        value = getattr(store_module, node.id)
        return frozenset(value) if isinstance(value, frozenset) else frozenset({value})
    if isinstance(node, ast.Set):
        parts = [_states_named(e) for e in node.elts]
        return frozenset().union(*parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
    return None


def test_every_move_in_the_code_says_what_it_expects() -> None:
    calls = _calls_that_move_tasks()
    assert len(calls) >= 20  # the engine's moves, at least
    for where, call in calls:
        keywords = {k.arg: k.value for k in call.keywords}
        assert "expect" in keywords, f"{where}: a move without expect="
        target = _states_named(call.args[1]) if len(call.args) > 1 else None
        expected = _states_named(keywords["expect"])
        if target is not None and expected is not None and len(target) == 1:
            (state,) = target
            assert expected <= predecessors(state), f"{where}: expects {sorted(expected)}, but only " \
                                                    f"{sorted(predecessors(state))} may move to {state}"


# the JSON a task carries


def test_progress_and_review_decode_with_a_fallback() -> None:
    task = Task(id="t", repo="r", prompt="p", preset="x")
    assert task.progress_snapshot() == NO_PROGRESS and task.review_data() is None
    for broken in ("{not json", "[1, 2]", "null", '"text"', "[" * 100_000):
        assert decode_progress(broken) == NO_PROGRESS and decode_review(broken) is None
    snapshot = ProgressSnapshot(phase="working", tokens_in=7, carry={"tokens": 5}, tail=("one",))
    with_data = Task(id="t", repo="r", prompt="p", preset="x", progress=encode_progress(snapshot),
                     review=encode_review({"clean": True}))
    assert with_data.progress_snapshot() == snapshot and with_data.review_data() == {"clean": True}
    assert json.loads(str(with_data.progress)) == snapshot.to_dict()
    odd = Task(id="t", repo="r", prompt="p", preset="x", progress='{"phase": "editing", "tokens_in": "7"}')
    assert odd.progress_snapshot() == NO_PROGRESS  # an unknown phase and a string count read as neutral


def test_review_round_trip() -> None:
    review = Review(task_id="t", state=TaskState.FINISHED, reason=None, branch="superset/t-x", base_branch="main",
                    files=[{"path": "a.py", "insertions": 1, "deletions": 0}], commits=1, insertions=1,
                    deletions=0, clean=True, conflicts=[], denials=["rm -rf /"])
    data = review.to_dict()
    assert type(data["state"]) is str and data["state"] == "finished"
    assert json.loads(encode_review(review)) == data
    assert Review.from_dict(data) == review
    assert Review.from_dict({**data, "added_by_a_newer_bot": 1}) == review
    older = {k: v for k, v in data.items() if k not in ("notes", "denials")}
    assert Review.from_dict(older).denials == []
    with pytest.raises(ValueError, match="without clean"):
        Review.from_dict({k: v for k, v in data.items() if k != "clean"})
    task = Task(id="t", repo="r", prompt="p", preset="x", review=encode_review(review))
    assert Review.from_dict(task.review_data() or {}) == review
