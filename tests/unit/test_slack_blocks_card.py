"""The root message and the status card of a task, for ordinary and hostile input."""

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
    text_tasks,
    texts,
)

from superset_bot.frontends.slack.blocks.card import root_message, status_card
from superset_bot.frontends.slack.blocks.limits import ulen, validate_blocks
from superset_bot.frontends.slack.blocks.messages import status_message
from superset_bot.frontends.slack.blocks.review import review_message
from superset_bot.store import Task


def test_root_message_shows_id_state_prompt_and_context() -> None:
    r = root_message(make_task(prompt="fix the flaky login test\nin tests/test_auth.py"))
    assert_safe(r)
    first = r.blocks[0]["text"]["text"]
    assert first.startswith(":runner: *Task `k3x9qa`* · running\n")
    assert ">fix the flaky login test\n>in tests/test_auth.py" in first
    context = dumps(r.blocks[1])
    for expected in ("`web`", "`agent/k3x9qa`", "`claude`", "<@U123ABC>"):
        assert expected in context
    assert "k3x9qa" in r.text and "running" in r.text
    pending = root_message(make_task(branch=None, state="queued"))
    assert "branch pending" in dumps(pending.blocks) and ":hourglass_flowing_sand:" in dumps(pending.blocks)


def test_root_message_hostile() -> None:
    r = root_message(hostile_task())
    assert_safe(r)
    assert "&lt;!channel&gt;" in dumps(r.blocks)


def test_status_card_running() -> None:
    r = status_card(make_task(), progress(tail=["one", "two ``` three", "<!here>"]), now=NOW)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "*Running* · 4m 05s" in everything
    assert "`Editing src/api.py`" in everything
    assert "12 tool calls" in everything and "34.5k in / 2.1k out tokens" in everything and "$0.42" in everything
    assert "k3x9qa" in everything
    tail = r.blocks[-1]["text"]["text"]
    assert tail.count("```") == 2 and tail.endswith("&lt;!here&gt;\n```") and "one\n" in tail
    assert "Editing src/api.py" in r.text and "k3x9qa" in r.text


def test_status_card_queued_preparing_and_done() -> None:
    queued = status_card(make_task(state="queued", started_at=None), None, now=NOW, queue_position=3)
    assert_safe(queued)
    assert "*Queued* · waiting 5m 00s · #3 in line" in dumps(queued.blocks)
    assert len(queued.blocks) == 2  # no empty code block
    preparing = status_card(make_task(state="preparing"), {}, now=NOW)
    assert "Preparing" in dumps(preparing.blocks)
    failed = status_card(make_task(state="failed", finished_at=NOW - 45, reason="agent exited with 2"),
                           progress(phase="done"), now=NOW)
    assert_safe(failed)
    assert ":x: *Failed* · took 3m 20s" in dumps(failed.blocks) and "agent exited with 2" in dumps(failed.blocks)
    starting = status_card(make_task(), progress(action=None, phase="starting", tail=[]), now=NOW)
    assert "Starting the agent" in dumps(starting.blocks)


def test_status_card_hostile_stays_small() -> None:
    p = progress(action=HOSTILE * 500, tail=[("x" * 9000 + "```" + HOSTILE)] * 1000, tools_used=10**20,
                 tokens_in=float("inf"), cost_usd=float("nan"), lines_seen="many", is_error=True)
    r = status_card(hostile_task(), p, now=NOW, queue_position=-5)
    assert_safe(r)
    assert len(dumps(r.blocks)) < 8000


progress_maps = st.dictionaries(
    st.sampled_from(["phase", "action", "tools_used", "tokens_in", "tokens_out", "cost_usd", "duration_s",
                     "final_text", "is_error", "lines_seen", "tail"]), anything, max_size=11)


@FUZZ
@given(text_tasks(), st.none() | progress_maps, st.floats(), st.none() | st.integers())
def test_status_card_property(task: Task, prog: dict[str, Any] | None, now: float, pos: int | None) -> None:
    r = status_card(task, prog, now=now, queue_position=pos)
    assert validate_blocks(r.blocks) == []
    assert r.text and ulen(r.text) <= 3000
    for text in texts(r.blocks):
        assert text.count("```") in (0, 2)
    assert len(dumps(r.blocks)) < 9000  # a status card stays well under the 12k message budget
    s = status_message(task, prog, "https://x.slack.com/archives/C1/p1", now=now, queue_position=pos)
    assert validate_blocks(s.blocks) == [] and s.text


DENIAL = ('denied: `python3 -m pytest` needs approval; grant it with "commands": ["python3 -m pytest"] '
          "in the preset's agent.permissions")


def test_refused_actions_show_on_the_status_card_and_in_the_review() -> None:
    card = status_card(make_task(), progress(denials=[DENIAL, "denied: writing /etc/hosts (outside the worktree)"]),
                         now=NOW)
    assert_safe(card)
    everything = dumps(card.blocks)
    assert ":no_entry: *Refused by the agent's permissions*" in everything
    assert "python3 -m pytest" in everything and "/etc/hosts" in everything
    assert card.blocks[-1]["text"]["text"].startswith("```")  # the tail stays last

    r = review_message(make_task(state="finished"), review(denials=[DENIAL]))
    assert_safe(r)
    assert "Refused by the agent's permissions" in dumps(r.blocks) and "agent.permissions" in dumps(r.blocks)
    assert "Refused" not in dumps(review_message(make_task(state="finished"), review()).blocks)


def test_many_hostile_denials_stay_within_slacks_limits() -> None:
    card = status_card(make_task(), progress(denials=[HOSTILE * 40] * 50), now=NOW)
    assert_safe(card)
    assert "…and 45 more" in dumps(card.blocks)
