"""ProgressSnapshot's codec: what the store keeps round-trips, today's rows read the same, and no
value at all (a broken row, a hostile dict) makes it raise or hands a reader an insane field."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import FUZZ

from superset_bot.agents.formats import AgentEvent, Progress
from superset_bot.domain.progress import (
    DENIALS_MAX,
    NO_PROGRESS,
    PHASES,
    TAIL_LINES_MAX,
    ProgressSnapshot,
)
from superset_bot.domain.task import Task, decode_progress, encode_progress

# a row as the bot stored it before the snapshot was typed (Progress.snapshot()'s dict, as JSON)
STORED_ROW = json.loads("""{
  "phase": "finishing", "action": null, "tools_used": 8, "tokens_in": 64427, "tokens_out": 535,
  "cost_usd": 0.1834, "duration_s": 48.21, "session_id": "5f0c-1a", "final_text": "Done: tests pass.",
  "is_error": false, "lines_seen": 31,
  "denials": ["denied: `curl -s x` needs approval; grant it with \\"commands\\": [\\"curl\\"]"],
  "error": null, "fatal": false, "carry": {"thread_tokens_in": 5400, "thread_tokens_out": 110},
  "carried": {}, "tail": ["Running make test", "all 3 tests passed"], "tail_lines": 20, "line_chars": 300
}""")


def test_a_stored_row_of_todays_format_decodes_the_same_both_ways() -> None:
    snapshot = ProgressSnapshot.from_dict(STORED_ROW)
    assert snapshot.to_dict() == STORED_ROW
    assert list(snapshot.to_dict()) == list(STORED_ROW)  # the same keys, in the same order
    assert (snapshot.phase, snapshot.tokens_in, snapshot.cost_usd, snapshot.tail) == (
        "finishing", 64427, 0.1834, ("Running make test", "all 3 tests passed"))
    assert snapshot.carry == {"thread_tokens_in": 5400, "thread_tokens_out": 110}
    task = Task(id="t", repo="r", prompt="p", preset="x", progress=json.dumps(STORED_ROW))
    assert task.progress_snapshot() == snapshot
    assert json.loads(encode_progress(snapshot)) == STORED_ROW


def test_the_snapshot_of_a_run_is_what_the_store_gives_back_and_rebuilds_the_run() -> None:
    progress = Progress()
    assert progress.snapshot() == NO_PROGRESS  # nothing happened yet
    progress.apply(AgentEvent(kind="tool", text="Editing a.py", action="Editing a.py", session_id="s9"))
    progress.apply(AgentEvent(kind="denied", text="denied: `rm -rf /` needs approval", denied="Bash: rm"))
    progress.apply(AgentEvent(kind="result", text="Done", tokens_in=10, tokens_out=2, cost_usd=0.01,
                              final_text="Done", carry={"k": 1}))
    snapshot = progress.snapshot()
    assert decode_progress(encode_progress(snapshot)) == snapshot
    again = Progress.from_snapshot(decode_progress(encode_progress(snapshot)))
    assert again.snapshot() == snapshot and list(again.tail) == list(progress.tail)
    assert (again.tools_used, again.denials, again.carry) == (1, ["denied: `rm -rf /` needs approval"], {"k": 1})


def test_no_progress_is_what_nothing_decodes_to() -> None:
    for nothing in (None, "", "{broken", "[]", "3", "null"):
        assert decode_progress(nothing) == NO_PROGRESS
    for value in (None, [], "text", 3, {"phase": "working"}.keys()):
        assert ProgressSnapshot.from_dict(value) == NO_PROGRESS
    assert ProgressSnapshot.from_dict({}) == NO_PROGRESS == ProgressSnapshot()
    assert NO_PROGRESS.phase == "starting" and NO_PROGRESS.tail == () and NO_PROGRESS.action is None


def test_hostile_fields_read_as_neutral_values() -> None:
    snapshot = ProgressSnapshot.from_dict({
        "phase": "editing", "action": 7, "tools_used": True, "tokens_in": float("nan"), "tokens_out": 10**20,
        "cost_usd": float("inf"), "duration_s": "48", "session_id": ["s"], "final_text": {"x": 1},
        "is_error": "yes", "lines_seen": -5, "denials": "not a list", "error": 0, "fatal": 1,
        "carry": [1], "carried": {1: "not a str key", "ok": 2}, "tail": [1, None, "ok", ["x"]],
        "tail_lines": "many", "line_chars": False, "unknown": "ignored",
    })
    assert snapshot == ProgressSnapshot(carried={"ok": 2}, tail=("ok",))
    assert ProgressSnapshot.from_dict({"cost_usd": 10**400, "tokens_in": 10**400}) == NO_PROGRESS
    assert ProgressSnapshot.from_dict({"tokens_in": 34.9, "cost_usd": 1, "is_error": True}).tokens_in == 34
    assert ProgressSnapshot.from_dict({"cost_usd": -0.5}).cost_usd == -0.5  # a number; the card shows none
    assert ProgressSnapshot.from_dict({"tail_lines": 0, "line_chars": 1}).to_dict()["tail_lines"] == 1
    assert ProgressSnapshot.from_dict({"tail_lines": 10**9}).tail_lines == TAIL_LINES_MAX


def test_a_stored_tail_and_denials_keep_their_bounds() -> None:
    snapshot = ProgressSnapshot.from_dict({
        "tail": [f"line {i} " + "x" * 500 for i in range(50)], "tail_lines": 5, "line_chars": 40,
        "denials": [f"denied {i} " + "y" * 500 for i in range(50)],
    })
    assert len(snapshot.tail) == 5 and snapshot.tail[-1].startswith("line 49 ")
    assert all(len(line) == 40 and line.endswith("…") for line in snapshot.tail + snapshot.denials)
    assert len(snapshot.denials) == DENIALS_MAX and snapshot.denials[0].startswith("denied 0 ")


def test_a_snapshot_built_in_memory_is_sane_too() -> None:
    built = replace(NO_PROGRESS, tail=["a", 3, "b"], tokens_in=float("nan"), phase=None, is_error=1)  # type: ignore[arg-type]
    assert (built.tail, built.tokens_in, built.phase, built.is_error) == (("a", "b"), 0, "starting", False)
    setup = replace(ProgressSnapshot.from_dict(STORED_ROW), tail=("x" * 4000,), action="Running setup")
    assert setup.tail == ("x" * 4000,)  # only a stored row's lines are cut to line_chars
    assert hash(setup) == hash(replace(setup, carry={"other": 1}))  # hashable, carry aside


# what a hostile store (or a newer bot) may hold: any JSON-ish value under every known key
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30).map(float)
    | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
KEYS = [f.name for f in fields(ProgressSnapshot)]
hostile_rows = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), values, max_size=len(KEYS) + 2)


def assert_sane(snapshot: ProgressSnapshot) -> None:
    assert snapshot.phase in PHASES
    for name in ("tools_used", "tokens_in", "tokens_out", "lines_seen"):
        value = getattr(snapshot, name)
        assert type(value) is int and 0 <= value <= 1e15, (name, value)
    for name in ("cost_usd", "duration_s"):
        value = getattr(snapshot, name)
        assert value is None or (type(value) is float and math.isfinite(value) and abs(value) <= 1e15)
    for name in ("action", "session_id", "final_text", "error"):
        assert getattr(snapshot, name) is None or isinstance(getattr(snapshot, name), str)
    assert type(snapshot.is_error) is bool and type(snapshot.fatal) is bool
    assert 1 <= snapshot.tail_lines <= TAIL_LINES_MAX and snapshot.line_chars >= 2
    assert len(snapshot.tail) <= snapshot.tail_lines and len(snapshot.denials) <= DENIALS_MAX
    for line in snapshot.tail + snapshot.denials:
        assert isinstance(line, str) and len(line) <= snapshot.line_chars
    assert all(isinstance(key, str) for key in (*snapshot.carry, *snapshot.carried))


@FUZZ
@given(st.one_of(hostile_rows, values))
def test_any_value_decodes_to_a_sane_snapshot_that_stays_put(row: Any) -> None:
    snapshot = ProgressSnapshot.from_dict(row)
    assert_sane(snapshot)
    stored = json.dumps(snapshot.to_dict())  # the store can always write it back
    assert ProgressSnapshot.from_dict(json.loads(stored)) == snapshot  # and reads back the same


@FUZZ
@given(st.builds(
    ProgressSnapshot, phase=st.sampled_from(PHASES), action=st.none() | st.text(max_size=60),
    tools_used=st.integers(0, 10**6), tokens_in=st.integers(0, 10**12), tokens_out=st.integers(0, 10**12),
    cost_usd=st.none() | st.floats(0, 1e6), duration_s=st.none() | st.floats(0, 1e7),
    session_id=st.none() | st.text(max_size=40), final_text=st.none() | st.text(max_size=200),
    is_error=st.booleans(), lines_seen=st.integers(0, 10**9),
    denials=st.lists(st.text(max_size=300), max_size=DENIALS_MAX).map(tuple), error=st.none() | st.text(max_size=300),
    fatal=st.booleans(), carry=st.dictionaries(st.text(max_size=20), st.integers() | st.text(max_size=20), max_size=3),
    tail=st.lists(st.text(max_size=300), max_size=20).map(tuple),
))
def test_a_valid_snapshot_round_trips_through_json(snapshot: ProgressSnapshot) -> None:
    assert ProgressSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot
    assert Progress.from_snapshot(snapshot).snapshot() == snapshot
