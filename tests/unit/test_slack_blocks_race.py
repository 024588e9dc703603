"""The race's root message and comparison card: every figure shown, nothing ranked, buttons only while
the race is open, and valid Block Kit for any prompt or count."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import HOSTILE

from superset_bot.domain.race import AttemptFigures, Race, RaceState
from superset_bot.domain.review import Review
from superset_bot.domain.state import TaskState
from superset_bot.domain.task import Task, encode_review
from superset_bot.frontends.slack.blocks.limits import validate_blocks
from superset_bot.frontends.slack.blocks.race import base_action, comparison_card, race_root

RACE = Race(id="r4c3aa", repo="web", prompt="fix the flaky login test", requester="U1", presets=("a", "b", "c"),
            base_branch="main", base_commit="0123456789abcdef", channel="C1")


def attempt(label: str, state: TaskState, **review: object) -> Task:
    data = None
    if review:
        data = encode_review(Review(task_id=label.lower() * 6, state=state, reason=None, branch=f"b{label}",
                                    base_branch="main", files=[{"path": "f"}] * int(str(review.get("files", 1))),
                                    commits=1, insertions=5, deletions=2, clean=bool(review.get("clean", True)),
                                    conflicts=list(review.get("conflicts", [])),  # type: ignore[call-overload]
                                    checks=review.get("checks"), duration_s=90.0,  # type: ignore[arg-type]
                                    cost_usd=0.25, tokens_in=1200, tokens_out=300))
    return Task(id=label.lower() * 6, repo="web", prompt="p", preset=f"preset-{label}", state=state,
                branch=f"superset/{label}", race_id=RACE.id, race_label=label, review=data)


ATTEMPTS = [attempt("A", TaskState.FINISHED, checks={"passed": True, "summary": "ok"}),
            attempt("B", TaskState.FAILED, checks={"passed": False, "summary": "1 failed"}),
            attempt("C", TaskState.FINISHED, clean=False, conflicts=["shared.txt"])]


def figures(attempts: list[Task]) -> list[AttemptFigures]:
    return [AttemptFigures.of(t.race_label or "?", t) for t in attempts]


def test_the_card_shows_every_figure_and_offers_pick_and_diffs() -> None:
    card = comparison_card(RACE, ATTEMPTS, figures(ATTEMPTS))
    assert validate_blocks(card.blocks) == []
    text = json.dumps(card.blocks)
    assert "checks passed" in text and "checks failed (1 failed)" in text and "conflicts in `shared.txt`" in text
    assert text.count("+5 / -2") == 3 and text.count("$0.25") == 3 and text.count("1.5m") + text.count("1m 30s") >= 3
    ids = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert {"race_pick_A", "race_pick_B", "race_pick_C", "race_view_diff_A", "race_diff_pair",
            "race_discard_all"} <= set(ids)
    assert len(ids) == len(set(ids)), "an action id once per message"
    pairs = next(e for b in card.blocks if b["type"] == "actions" for e in b["elements"]
                 if e["action_id"] == "race_diff_pair")
    assert [o["value"] for o in pairs["options"]] == [f"{RACE.id}:aaaaaa:bbbbbb", f"{RACE.id}:aaaaaa:cccccc",
                                                      f"{RACE.id}:bbbbbb:cccccc"]
    assert base_action("race_pick_B") == "race_pick" and base_action("race_view_diff_A") == "race_view_diff"
    assert base_action("task_merge") == "task_merge" and base_action("race_diff_pair") == "race_diff_pair"


def test_a_running_attempt_cannot_be_picked_and_a_picked_race_has_no_buttons() -> None:
    running = [*ATTEMPTS[:2], attempt("C", TaskState.RUNNING)]
    ids = [e["action_id"] for b in comparison_card(RACE, running, figures(running)).blocks if b["type"] == "actions"
           for e in b["elements"]]
    assert "race_pick_C" not in ids and "race_pick_A" in ids
    picked = Race(**{**RACE.__dict__, "state": RaceState.PICKED, "winner": "aaaaaa", "closed_by": "U0BOB"})
    closed = [ATTEMPTS[0], *[Task(**{**t.__dict__, "state": TaskState.DISCARDED}) for t in ATTEMPTS[1:]]]
    for rendered in (comparison_card(picked, closed, figures(closed)), race_root(picked, closed)):
        assert not [b for b in rendered.blocks if b["type"] == "actions"]
        assert "Attempt *A* picked by <@U0BOB>" in json.dumps(rendered.blocks)


def test_the_root_lists_the_attempts() -> None:
    root = race_root(RACE, ATTEMPTS)
    assert validate_blocks(root.blocks) == []
    text = json.dumps(root.blocks)
    assert all(f"*{label}* `{label.lower() * 6}`" in text for label in "ABC") and "`01234567`" in text
    assert {e["action_id"] for b in root.blocks if b["type"] == "actions" for e in b["elements"]} == {
        "race_compare", "race_discard_all"}


@given(st.text(max_size=4000))
def test_any_prompt_makes_valid_blocks(prompt: str) -> None:
    race = Race(**{**RACE.__dict__, "prompt": prompt + HOSTILE})
    assert validate_blocks(race_root(race, ATTEMPTS).blocks) == []
    assert validate_blocks(comparison_card(race, ATTEMPTS, figures(ATTEMPTS)).blocks) == []
