"""Thread replies: milestones, the prune warning with Keep and the failure notice with Retry."""

from __future__ import annotations

from support.blocksamples import HOSTILE, assert_safe, buttons, dumps, hostile_task, make_task

from superset_bot.frontends.slack.blocks.actions import ACTION_KEEP, ACTION_RETRY
from superset_bot.frontends.slack.blocks.notices import failure_with_retry, milestone, prune_warning


def test_milestone() -> None:
    ok = milestone(make_task(), "Worktree ready on `agent/k3x9qa`")
    assert ok.blocks[0]["text"]["text"] == "✅ Worktree ready on `agent/k3x9qa`"
    bad = milestone(make_task(), "Checks failed <!channel>", ok=False)
    assert bad.blocks[0]["text"]["text"].startswith("⚠️ ")
    assert_safe(bad)
    assert_safe(milestone(hostile_task(), HOSTILE * 1000))
    merged = milestone(make_task(), "Merged into `main` by {actor} (abc123).", actor="U777AAA")
    assert merged.blocks[0]["text"]["text"] == "✅ Merged into `main` by <@U777AAA> (abc123)."
    assert "<@U777AAA>" in merged.text
    forged = milestone(make_task(), "by {actor}", actor="<!channel>")
    assert_safe(forged)


def test_prune_warning() -> None:
    r = prune_warning(make_task(state="finished"), 24)
    assert_safe(r)
    assert "This worktree will be pruned in 24h unless you keep it." in r.blocks[0]["text"]["text"]
    (keep,) = buttons(r.blocks)
    assert (keep["action_id"], keep["value"]) == (ACTION_KEEP, "k3x9qa")
    assert "in 1.5h" in dumps(prune_warning(make_task(), 1.5).blocks)
    assert_safe(prune_warning(hostile_task(), float("nan")))


def test_failure_with_retry() -> None:
    r = failure_with_retry(make_task(state="failed"), "setup failed: `npm ci` exited 1")
    assert_safe(r)
    assert "k3x9qa" in r.blocks[0]["text"]["text"] and "`npm ci` exited 1" in r.blocks[0]["text"]["text"]
    (retry,) = buttons(r.blocks)
    assert (retry["action_id"], retry["value"], retry["style"]) == (ACTION_RETRY, "k3x9qa", "primary")
    assert_safe(failure_with_retry(hostile_task(), HOSTILE * 1000))


def test_people_the_bot_names_are_mentions_and_their_words_ping_nobody() -> None:
    followup = milestone(make_task(), "Follow-up from U0ALICE1: ask from U0BOB22 and by W0CAROL3 <!here>")
    body = followup.blocks[0]["text"]["text"]
    assert body.startswith("✅ Follow-up from <@U0ALICE1>: ")
    assert "U0BOB22" in body and "<@U0BOB22>" not in body and "<@W0CAROL3>" not in body
    assert "<@U0ALICE1>" in followup.text and "&lt;!here&gt;" in body
    failed = failure_with_retry(make_task(state="failed"), "cancelled by U0ALICE1")
    assert "cancelled by <@U0ALICE1>" in failed.blocks[0]["text"]["text"] and "<@U0ALICE1>" in failed.text
    # a word that only looks like an id (no digit) and an id-like token without "by"/"from" stay text
    plain = milestone(make_task(), "Merged by USBCABLE; see U0ALICE1")
    assert "<@" not in dumps(plain.blocks)
