"""The review and the closed review: content people rely on, and Slack's limits under hostile input."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import (
    FUZZ,
    HOSTILE,
    NOW,
    anything,
    assert_safe,
    buttons,
    dumps,
    file_entry,
    hostile_review,
    hostile_task,
    make_task,
    progress,
    review,
    text_tasks,
    texts,
)

from superset_bot.frontends.slack.blocks.actions import (
    ACTION_DIFF,
    ACTION_DISCARD,
    ACTION_FIX_CI,
    ACTION_MERGE,
    ACTION_UPDATE,
)
from superset_bot.frontends.slack.blocks.card import task_card
from superset_bot.frontends.slack.blocks.limits import ulen, validate_blocks
from superset_bot.frontends.slack.blocks.review import closed_review, review_message
from superset_bot.store import ALL_STATES, Task


def test_review_message_clean() -> None:
    r = review_message(make_task(state="finished"), review())
    assert_safe(r)
    assert r.blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Ready for review", "emoji": True}}
    everything = dumps(r.blocks)
    assert "*Task `k3x9qa`* · `agent/k3x9qa` → `develop`" in everything
    assert "*3 files changed* · +13 −4 · 2 commits · took 4m 05s" in everything and "$0.42" in everything
    files = r.blocks[2]["text"]["text"].split("\n")
    assert files == ["`M` `src/api.py`  +12 −3", "`R` `src/old.py` → `src/new.py`  +1 −1", "`A` `logo.png`  binary"]
    assert "✅ *Checks passed* · 12 passed" in everything
    assert "Merges cleanly into `develop`" in everything
    assert ">I fixed the race in the login test." in everything
    merge, discard, diff = buttons(r.blocks)
    assert (merge["action_id"], merge["style"], merge["value"]) == (ACTION_MERGE, "primary", "k3x9qa")
    assert merge["confirm"]["title"]["text"] == "Merge task?"
    assert merge["confirm"]["text"]["type"] == "plain_text"
    assert "agent/k3x9qa" in merge["confirm"]["text"]["text"] and "develop" in merge["confirm"]["text"]["text"]
    assert (merge["confirm"]["confirm"]["text"], merge["confirm"]["deny"]["text"]) == ("Merge", "Cancel")
    assert (discard["action_id"], discard["style"], discard["value"]) == (ACTION_DISCARD, "danger", "k3x9qa")
    assert discard["confirm"]["confirm"]["text"] == "Discard"
    assert (diff["action_id"], diff["value"]) == (ACTION_DIFF, "k3x9qa") and "style" not in diff
    assert r.blocks[-1]["type"] == "context" and "follow-up" in dumps(r.blocks[-1])
    assert "k3x9qa" in r.text and "ready for review" in r.text


def test_review_message_conflicts_and_problems() -> None:
    rv = review(clean=False, conflicts=["src/api.py", "README.md"], state="timed_out", reason="timed out after 30m",
                checks={"passed": False, "summary": "2 failed", "failing_tail": "E assert 1 == 2\nFAILED t ```x"})
    r = review_message(make_task(state="timed_out"), rv)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert r.blocks[0]["text"]["text"] == "Finished with problems"
    assert "timed out after 30m" in everything and "timed out after 30m" in r.text
    assert "Conflicts with `develop` in: `src/api.py`, `README.md`" in everything
    checks = next(t for t in texts(r.blocks) if "Checks failed" in t)
    assert checks == "❌ *Checks failed* · 2 failed\n```\nE assert 1 == 2\nFAILED t `\u200b`\u200b`x\n```"
    ids = [btn["action_id"] for btn in buttons(r.blocks)]
    assert ids == [ACTION_UPDATE, ACTION_DISCARD, ACTION_DIFF]
    assert all(btn["value"] == "k3x9qa" for btn in buttons(r.blocks))


def test_review_message_top_files_and_no_changes() -> None:
    files = [file_entry(f"f{i}.py", added=i) for i in range(30)]
    r = review_message(make_task(), review(files=files), top_files=5)
    listing = r.blocks[2]["text"]["text"].split("\n")
    assert listing[:5] == [f"`M` `f{i}.py`  +{i} −0" for i in (29, 28, 27, 26, 25)]
    assert listing[5] == "_…and 25 more_"
    empty = review_message(make_task(), review(files=[], commits=0, insertions=0, deletions=0))
    assert "The agent made no changes" in dumps(empty.blocks)
    assert [btn["action_id"] for btn in buttons(empty.blocks)] == [ACTION_DISCARD]
    mention = review_message(make_task(), review(), bot_user="UBOT1")
    assert "mentioning <@UBOT1>" in dumps(mention.blocks)


def test_review_message_hostile() -> None:
    r = review_message(hostile_task(), hostile_review(), top_files=10_000)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "more" in everything  # the file list and conflicts were cut, and say so
    for btn in buttons(r.blocks):
        assert btn["value"] == hostile_task().id


def review_maps() -> st.SearchStrategy[dict[str, Any]]:
    files = st.lists(st.fixed_dictionaries({
        "path": anything, "old_path": anything, "status": st.sampled_from(list("AMDRCTX?")) | st.text(max_size=3),
        "added": anything, "deleted": anything, "binary": st.booleans() | anything,
    }) | anything, max_size=40)
    return st.fixed_dictionaries({}, optional={
        "state": st.sampled_from(sorted(ALL_STATES)) | anything, "reason": anything, "branch": anything,
        "base_branch": anything, "files": files, "commits": anything, "insertions": anything,
        "deletions": anything, "clean": anything, "conflicts": anything,
        "checks": st.none() | st.fixed_dictionaries({}, optional={
            "passed": anything, "summary": anything, "failing_tail": anything}),
        "duration_s": anything, "cost_usd": anything, "tokens_in": anything, "tokens_out": anything,
        "final_text": anything, "notes": anything, "cost_estimated_from": anything,
    })


@FUZZ
@given(text_tasks(), review_maps(), st.integers(min_value=-5, max_value=200))
def test_review_message_property(task: Task, rv: dict[str, Any], top: int) -> None:
    r = review_message(task, rv, top_files=top)
    assert validate_blocks(r.blocks) == []
    assert r.text and ulen(r.text) <= 3000
    assert any(blk["type"] == "actions" for blk in r.blocks)
    for text in texts(r.blocks):
        assert text.count("```") in (0, 2)
    closed = closed_review(task, rv, outcome="merged", actor="U1X", when=NOW)
    assert validate_blocks(closed.blocks) == []
    assert not any(blk["type"] == "actions" for blk in closed.blocks)


@pytest.mark.parametrize("outcome,verb", [("merged", "Merged"), ("discarded", "Discarded"), ("pruned", "Pruned"),
                                          ("cancelled", "Cancelled")])
def test_closed_review_has_no_buttons_and_says_who(outcome: str, verb: str) -> None:
    task = make_task(state=outcome, merge_commit="abcdef1234567890")
    r = closed_review(task, review(), outcome=outcome, actor="U999ZZZ", when=NOW)
    assert_safe(r)
    assert not any(blk["type"] == "actions" for blk in r.blocks)
    last = r.blocks[-1]["elements"][0]["text"]
    assert f"{verb} by <@U999ZZZ> · <!date^{int(NOW)}^" in last
    assert verb in r.blocks[0]["text"]["text"]
    assert "3 files changed" in dumps(r.blocks)
    if outcome == "merged":
        assert "`abcdef123456`" in last
    bare = closed_review(task, None, outcome=outcome, actor="scheduler", when=NOW)
    assert_safe(bare)
    assert f"{verb} by scheduler" in dumps(bare.blocks) and "k3x9qa" in dumps(bare.blocks)


def test_closed_review_superseded_and_without_actor() -> None:
    r = closed_review(make_task(state="finished"), review(), outcome="superseded", actor="", when=NOW)
    assert_safe(r)
    assert r.blocks[0]["text"]["text"] == ":arrows_counterclockwise: Superseded"
    assert "Superseded by a newer review · <!date^" in dumps(r.blocks)
    quiet = closed_review(make_task(), None, outcome="discarded", actor="", when=NOW)
    assert "Discarded · <!date^" in dumps(quiet.blocks) and " by " not in quiet.text


def test_closed_review_hostile() -> None:
    r = closed_review(hostile_task(), hostile_review(), outcome="<!channel>", actor="<!here>", when=float("inf"))
    assert_safe(r)
    assert not any(blk["type"] == "actions" for blk in r.blocks)


def test_renderers_are_quick_on_huge_input() -> None:
    start = time.monotonic()
    review_message(hostile_task(), hostile_review())
    task_card(hostile_task(), progress(tail=["y" * 100_000] * 200), now=NOW)
    # generous: only catches accidental quadratic work, not a speed benchmark
    assert time.monotonic() - start < 20


def _pull(state: str = "open", checks: list[dict[str, Any]] | None = None, verdict: str = "none") -> dict[str, Any]:
    return {"task_id": "k3x9qa", "provider": "github", "slug": "acme/web", "number": 12,
            "url": "https://github.com/acme/web/pull/12", "head_branch": "agent/k3x9qa", "base_branch": "develop",
            "state": state, "head_sha": "a" * 40, "checks": checks or [], "checks_state": verdict}


def test_a_review_delivered_by_pull_request_links_it_and_merges_it() -> None:
    rendered = review_message(make_task(state="finished"), review(pull=_pull()))
    text = dumps(rendered.blocks)
    assert "<https://github.com/acme/web/pull/12|acme/web#12>" in text and "no checks reported yet" in text
    merge = next(b for b in buttons(rendered.blocks) if b["action_id"] == ACTION_MERGE)
    assert merge["text"]["text"] == "Merge PR" and "acme/web#12" in dumps([merge["confirm"]])
    assert ACTION_FIX_CI not in {b["action_id"] for b in buttons(rendered.blocks)}
    assert_safe(rendered)


def test_failing_checks_are_named_with_what_they_said_and_offer_fix_ci() -> None:
    checks = [{"name": "lint", "state": "failure", "summary": "2 errors\nE225 missing whitespace"},
              {"name": "tests", "state": "success", "summary": "all good"},
              {"name": "build", "state": "pending", "summary": ""}]
    rendered = review_message(make_task(state="finished"), review(pull=_pull(checks=checks, verdict="failure")))
    text = dumps(rendered.blocks)
    assert "1 of 3 checks failed" in text and "lint: 2 errors · E225 missing whitespace" in text
    assert "all good" not in text, "only a failure's output is shown"
    assert ACTION_FIX_CI in {b["action_id"] for b in buttons(rendered.blocks)}
    passed = review_message(make_task(state="finished"), review(pull=_pull(
        checks=[{"name": "lint", "state": "success"}], verdict="success")))
    assert "the check passed" in dumps(passed.blocks)
    assert ACTION_FIX_CI not in {b["action_id"] for b in buttons(passed.blocks)}


def test_a_hostile_pull_request_stays_within_slacks_limits_and_pings_nobody() -> None:
    checks = [{"name": HOSTILE * 20, "state": "failure", "summary": HOSTILE * 200}] * 300
    pull = _pull(checks=checks, verdict="failure") | {"slug": HOSTILE * 50, "url": "http://evil.example|x>",
                                                       "number": 10**12}
    assert_safe(review_message(make_task(state="finished"), review(pull=pull)))
    assert_safe(review_message(make_task(state="finished"), review(pull={"number": "x", "checks": "no"})))
