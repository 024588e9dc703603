"""A task's one live message (its root, which is its status card), for ordinary and hostile input."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import (
    FUZZ,
    HOSTILE,
    NOW,
    anything,
    assert_safe,
    dumps,
    hostile_task,
    make_task,
    progress,
    review,
    stored_progress,
    text_tasks,
    texts,
)

from superset_bot.domain.progress import NO_PROGRESS, ProgressSnapshot
from superset_bot.frontends.slack.blocks.card import moved_card, task_card
from superset_bot.frontends.slack.blocks.limits import ulen, validate_blocks
from superset_bot.frontends.slack.blocks.messages import status_message
from superset_bot.frontends.slack.blocks.review import review_message
from superset_bot.store import Task


def test_card_shows_id_state_prompt_and_context() -> None:
    r = task_card(make_task(prompt="fix the flaky login test\nin tests/test_auth.py"), None, now=NOW)
    assert_safe(r)
    first = r.blocks[0]["text"]["text"]
    assert first.startswith(":runner: *Task `k3x9qa`* · *Running* · 4m 05s\n")
    assert ">fix the flaky login test\n>in tests/test_auth.py" in first
    context = dumps(r.blocks[1])
    for expected in ("`web`", "`agent/k3x9qa`", "`claude`", "<@U123ABC>"):
        assert expected in context
    assert "k3x9qa" in r.text and "running" in r.text and "fix the flaky login test" in r.text
    pending = task_card(make_task(branch=None, state="queued"), None, now=NOW)
    assert "branch pending" in dumps(pending.blocks) and ":hourglass_flowing_sand:" in dumps(pending.blocks)


def test_card_hostile() -> None:
    r = task_card(hostile_task(), None, now=NOW)
    assert_safe(r)
    assert "&lt;!channel&gt;" in dumps(r.blocks)


def test_card_offers_cancel_only_while_the_task_can_be_stopped() -> None:
    for state in ("queued", "preparing", "running"):
        actions = task_card(make_task(state=state), None, now=NOW).blocks[-1]
        assert actions["type"] == "actions" and actions["elements"][0]["action_id"] == "task_cancel"
        assert actions["elements"][0]["value"] == "k3x9qa" and "confirm" in actions["elements"][0]
    for state in ("finished", "failed", "merged", "discarded", "cancelled"):
        assert "task_cancel" not in dumps(task_card(make_task(state=state), None, now=NOW).blocks)


def test_card_keeps_the_last_lines_short_and_only_where_they_help() -> None:
    lines = [f"line {i}" for i in range(50)]
    running = dumps(task_card(make_task(), progress(tail=lines), now=NOW).blocks)
    assert "line 49" in running and "line 42" in running and "line 41" not in running
    failed = dumps(task_card(make_task(state="failed", reason="exit 2"), progress(tail=lines), now=NOW).blocks)
    assert "line 49" in failed
    done = dumps(task_card(make_task(state="merged"), progress(tail=lines), now=NOW).blocks)
    assert "line 49" not in done  # closed: the review in the thread says what was done


def test_an_old_status_card_says_where_the_state_went() -> None:
    r = moved_card()
    assert_safe(r)
    assert "first message" in r.text and "running" not in dumps(r.blocks)


def test_card_running() -> None:
    r = task_card(make_task(), progress(tail=["one", "two ``` three", "<!here>"]), now=NOW)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "*Running* · 4m 05s" in everything
    assert "`Editing src/api.py`" in everything
    assert "12 tool calls" in everything and "34.5k in / 2.1k out tokens" in everything and "$0.42" in everything
    assert "k3x9qa" in everything
    tail = r.blocks[-2]["text"]["text"]  # the Cancel button comes last
    assert tail.count("```") == 2 and tail.endswith("&lt;!here&gt;\n```") and "one\n" in tail
    assert "Editing src/api.py" in r.text and "k3x9qa" in r.text


def test_card_queued_preparing_and_done() -> None:
    queued = task_card(make_task(state="queued", started_at=None), None, now=NOW, queue_position=3)
    assert_safe(queued)
    assert "*Queued* · waiting 5m 00s · #3 in line" in dumps(queued.blocks)
    assert len(queued.blocks) == 3  # no empty code block: head, context, Cancel
    preparing = task_card(make_task(state="preparing"), NO_PROGRESS, now=NOW)
    assert "Preparing" in dumps(preparing.blocks)
    failed = task_card(make_task(state="failed", finished_at=NOW - 45, reason="agent exited with 2"),
                           progress(phase="done"), now=NOW)
    assert_safe(failed)
    assert ":x: *Task `k3x9qa`* · *Failed* · took 3m 20s" in dumps(failed.blocks) and "agent exited with 2" in dumps(failed.blocks)
    starting = task_card(make_task(), progress(action=None, phase="starting", tail=[]), now=NOW)
    assert "Starting the agent" in dumps(starting.blocks)


def test_card_hostile_stays_small() -> None:
    p = stored_progress(action=HOSTILE * 500, tail=[("x" * 9000 + "```" + HOSTILE)] * 1000, tools_used=10**20,
                        tokens_in=float("inf"), cost_usd=float("nan"), lines_seen="many", is_error=True)
    r = task_card(hostile_task(), p, now=NOW, queue_position=-5)
    assert_safe(r)
    assert len(dumps(r.blocks)) < 8000
    long = task_card(hostile_task(), progress(action=HOSTILE * 500, tail=[("x" * 9000 + "```" + HOSTILE)] * 1000),
                     now=NOW)  # built in memory: no stored row's bounds on the tail
    assert_safe(long)
    assert len(dumps(long.blocks)) < 8000


progress_maps = st.dictionaries(
    st.sampled_from(["phase", "action", "tools_used", "tokens_in", "tokens_out", "cost_usd", "duration_s",
                     "final_text", "is_error", "lines_seen", "tail", "denials", "error", "fatal", "tail_lines",
                     "line_chars"]), anything, max_size=16)


@FUZZ
@given(text_tasks(), st.none() | progress_maps, st.floats(), st.none() | st.integers())
def test_card_property(task: Task, stored: dict[str, Any] | None, now: float, pos: int | None) -> None:
    prog = None if stored is None else ProgressSnapshot.from_dict(stored)  # what a stored row decodes to
    r = task_card(task, prog, now=now, queue_position=pos)
    assert validate_blocks(r.blocks) == []
    assert r.text and ulen(r.text) <= 3000
    for text in texts(r.blocks):
        assert text.count("```") in (0, 2)
    assert len(dumps(r.blocks)) < 9000  # a card stays well under the 12k message budget
    s = status_message(task, prog, "https://x.slack.com/archives/C1/p1", now=now, queue_position=pos)
    assert validate_blocks(s.blocks) == [] and s.text


DENIAL = ('denied: `python3 -m pytest` needs approval; grant it with "commands": ["python3 -m pytest"] '
          "in the preset's agent.permissions")


def test_refused_actions_show_on_the_card_and_in_the_review() -> None:
    card = task_card(make_task(), progress(denials=[DENIAL, "denied: writing /etc/hosts (outside the worktree)"]),
                         now=NOW)
    assert_safe(card)
    everything = dumps(card.blocks)
    assert ":no_entry: *Refused by the agent's permissions*" in everything
    assert "python3 -m pytest" in everything and "/etc/hosts" in everything
    assert card.blocks[-2]["text"]["text"].startswith("```")  # the tail stays last, above Cancel

    r = review_message(make_task(state="finished"), review(denials=[DENIAL]))
    assert_safe(r)
    assert "Refused by the agent's permissions" in dumps(r.blocks) and "agent.permissions" in dumps(r.blocks)
    assert "Refused" not in dumps(review_message(make_task(state="finished"), review()).blocks)


def test_many_hostile_denials_stay_within_slacks_limits() -> None:
    card = task_card(make_task(), progress(denials=[HOSTILE * 40] * 50), now=NOW)
    assert_safe(card)
    assert "…and 45 more" in dumps(card.blocks)


def test_a_reason_naming_a_person_mentions_them() -> None:
    r = task_card(make_task(state="cancelled", reason="cancelled by U0ALICE1", finished_at=NOW), None, now=NOW)
    assert "cancelled by <@U0ALICE1>" in dumps(r.blocks)


def test_a_step_of_the_way_shows_on_the_card_while_the_task_is_active() -> None:
    note = "Agent started (preset `claude`, `claude`, pid 4242) <!here>."
    running = dumps(task_card(make_task(), None, now=NOW, note=note).blocks)
    assert "pid 4242" in running and "&lt;!here&gt;" in running
    assert "pid 4242" not in dumps(task_card(make_task(state="finished"), None, now=NOW, note=note).blocks)
