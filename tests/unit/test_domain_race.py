"""The race vocabulary: how many attempts of which preset, who a follow-up is for, the state's codec,
and each attempt's figures read from its stored review (never from anything else)."""

from __future__ import annotations

import json

import pytest

from superset_bot.domain.race import (
    RACE_TRANSITIONS,
    AttemptFigures,
    RaceState,
    UnknownAttempt,
    address,
    all_done,
    attempt_presets,
    decode_race_state,
    settled_without_pick,
)
from superset_bot.domain.review import Review
from superset_bot.domain.state import TaskState
from superset_bot.domain.task import Task, encode_review

ATTEMPTS = {"A": "aaaaaa", "B": "bbbbbb", "C": "cccccc"}


@pytest.mark.parametrize("count, named, expected", [
    (3, [], ("dflt",) * 3),
    (2, ["codex"], ("codex", "codex")),
    (None, ["a", "b", "c"], ("a", "b", "c")),
    (3, ["a", "b", "c"], ("a", "b", "c")),
])
def test_attempt_presets(count: int | None, named: list[str], expected: tuple[str, ...]) -> None:
    assert attempt_presets(count, named, "dflt", 5) == expected


@pytest.mark.parametrize("count, named, words", [
    (None, [], "Say how many attempts"),
    (None, ["one"], "Say how many attempts"),
    (1, [], "at least 2"),
    (6, [], "more than this bot allows in one race (5"),
    (2, ["a", "b", "c"], "2 attempts but 3 presets"),
    (None, list("abcdef"), "6 attempts is more"),
])
def test_attempt_presets_refusals(count: int | None, named: list[str], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        attempt_presets(count, named, "dflt", 5)


@pytest.mark.parametrize("text, targets, body", [
    ("B: only b", ("bbbbbb",), "only b"),
    ("b, c: both", ("bbbbbb", "cccccc"), "both"),
    ("A and C: ends", ("aaaaaa", "cccccc"), "ends"),
    ("attempt c: this one", ("cccccc",), "this one"),
    ("bbbbbb: by id", ("bbbbbb",), "by id"),
    ("A lot broke: fix it", ("aaaaaa", "bbbbbb", "cccccc"), "A lot broke: fix it"),  # no colon right after
    ("add tests", ("aaaaaa", "bbbbbb", "cccccc"), "add tests"),
    ("", ("aaaaaa", "bbbbbb", "cccccc"), ""),
])
def test_a_follow_up_is_addressed_by_label_or_id(text: str, targets: tuple[str, ...], body: str) -> None:
    assert address(text, ATTEMPTS) == (targets, body)


def test_the_race_state_codec_and_table() -> None:
    assert decode_race_state("picked") is RaceState.PICKED
    assert decode_race_state("from-a-newer-bot") is RaceState.OPEN and decode_race_state(None) is RaceState.OPEN
    assert RaceState.PICKED.closed and RaceState.DISCARDED.closed and not RaceState.PICKING.closed
    assert RACE_TRANSITIONS[RaceState.PICKED] == frozenset() == RACE_TRANSITIONS[RaceState.DISCARDED]
    assert RaceState.OPEN in RACE_TRANSITIONS[RaceState.PICKING], "a refused merge gives the claim back"
    assert RaceState.OPEN not in RACE_TRANSITIONS[RaceState.DISCARDING], "a discard is only ever finished"


def task(label: str, state: TaskState, review: Review | None = None) -> Task:
    return Task(id=ATTEMPTS[label], repo="web", prompt="p", preset=f"preset-{label}", state=state, race_id="r",
                race_label=label, review=encode_review(review) if review else None,
                progress=json.dumps({"tokens_in": 10, "tokens_out": 5, "cost_usd": 0.02}))


def test_figures_come_from_the_attempts_own_review() -> None:
    review = Review(task_id="aaaaaa", state=TaskState.FINISHED, reason=None, branch="b", base_branch="main",
                    files=[{"path": "x"}, {"path": "y"}], commits=1, insertions=12, deletions=3, clean=False,
                    conflicts=["x"], checks={"passed": False, "summary": "1 failed"}, duration_s=61.5, cost_usd=0.42,
                    tokens_in=1000, tokens_out=200)
    f = AttemptFigures.of("A", task("A", TaskState.FINISHED, review))
    assert (f.files, f.insertions, f.deletions, f.checks, f.checks_summary) == (2, 12, 3, False, "1 failed")
    assert (f.clean, f.conflicts, f.duration_s, f.cost_usd, f.tokens_in) == (False, ("x",), 61.5, 0.42, 1000)
    assert f.reviewed and f.done and f.preset == "preset-A"
    running = AttemptFigures.of("B", task("B", TaskState.RUNNING))
    assert not running.reviewed and not running.done and running.files is None
    assert (running.tokens_in, running.cost_usd) == (10, 0.02), "a running attempt shows what progress knows"
    broken = AttemptFigures.of("C", Task(id="cccccc", repo="web", prompt="p", preset="x", state=TaskState.FINISHED,
                                         review='{"files": "nope", "insertions": "7", "clean": 1}'))
    assert (broken.files, broken.insertions, broken.clean) == (None, None, None), "odd values are not figures"


def test_when_a_race_is_done_or_settled() -> None:
    finished, running = task("A", TaskState.FINISHED), task("B", TaskState.RUNNING)
    assert all_done([finished, task("C", TaskState.FAILED)]) and not all_done([finished, running]) and not all_done([])
    assert settled_without_pick([task("A", TaskState.DISCARDED), task("B", TaskState.PRUNED)])
    assert not settled_without_pick([task("A", TaskState.DISCARDED), task("B", TaskState.MERGED)])
    assert not settled_without_pick([task("A", TaskState.DISCARDED), finished])


def test_an_unknown_attempt_is_refused_not_sent_to_everyone() -> None:
    with pytest.raises(UnknownAttempt, match=r"no attempt D \(its attempts: A, B, C\)"):
        address("A & D: do it", ATTEMPTS)
    assert address("*B*: bold", ATTEMPTS) == (("bbbbbb",), "bold")
    assert address("Note: a plain word before a colon", ATTEMPTS)[0] == tuple(ATTEMPTS.values())
