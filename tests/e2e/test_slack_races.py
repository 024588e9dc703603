"""A race seen from Slack: one slash command to three attempts of different quality (one fails its
checks, one conflicts with its base, one is clean) in one thread, a comparison card whose figures are
each attempt's own review, Diff A vs B as a file, a follow-up addressed to one attempt, and one Pick
merging the winner and discarding the rest, however many people click Pick on whichever attempts.

Signed requests over real HTTP into the bot and the fake Slack, real git, real agent processes
(printing Claude Code's stream with its cost), real SQLite.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import git
from support.engineharness import CLAUDE_SAMPLE_COST, costed_preset
from support.gitfiles import branches
from support.slackharness import CHANNEL, Bot, all_text, buttons, preset
from support.waiting import eventually
from test_slack_more import ALICE, command_form, interactive, modal_values, post

from superset_bot.domain.race import AttemptFigures, RaceState
from superset_bot.store import DISCARDED, MERGED

PRESETS = {
    "clean": costed_preset("edit"),
    "red": costed_preset("edit", checks=["false"]),
    "clash": costed_preset("conflict", env={"CONFLICT_FILE": "shared.txt"}),
}


def task_branches(repo: Path) -> list[str]:
    return [b for b in branches(repo) if b.startswith("superset/")]


async def select(b: Bot, action_id: str, value: str, *, user: str = "U0ALICE", message_ts: str = "1.0") -> int:
    """A choice in a static select, as Slack sends it."""
    b.counter += 1
    payload = {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1",
        "trigger_id": f"trig{b.counter}", "container": {"type": "message", "channel_id": CHANNEL,
                                                         "message_ts": message_ts},
        "channel": {"id": CHANNEL}, "message": {"ts": message_ts}, "response_url": b.fake.response_url(f"sel{b.counter}"),
        "actions": [{"action_id": action_id, "block_id": "race-card", "type": "static_select",
                     "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": value},
                     "action_ts": str(time.time())}],
    }
    resp = await b.post_signed(urllib.parse.urlencode({"payload": json.dumps(payload)}),
                               "application/x-www-form-urlencoded")
    return resp.status


async def start_race(b: Bot, text: str) -> tuple[Any, list[Any]]:
    status, _ = await b.command(text)
    assert status == 200
    return await race_started(b)


async def race_started(b: Bot) -> tuple[Any, list[Any]]:
    """The race a command or the form started, and its attempts, once it exists."""
    deadline = time.monotonic() + 30
    while not (races := await b.store.races_in(set(RaceState))):
        assert time.monotonic() < deadline, "no race was started"
        await asyncio.sleep(0.05)
    return races[0], await b.store.race_attempts(races[0].id)


async def test_a_race_goes_from_one_slash_command_to_one_merged_winner(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(PRESETS)
    race, attempts = await start_race(b, "race --presets clean,red,clash add the feature")
    # someone commits to main meanwhile: the clashing attempt's review finds the conflict
    (b.repo / "shared.txt").write_text("a person's version\n")
    git(b.repo, "commit", "-qam", "person edits shared.txt")
    for task in attempts:
        await b.finished(task.id)
    clean, red, clash = [await b.engine.get(t.id) for t in attempts]

    ids = b.slack.frontend.races.messages.get(race.id)
    assert ids is not None and ids.channel == CHANNEL
    root = b.fake.messages[(CHANNEL, ids.thread_ts)]
    assert [m.ts for m in b.fake.channel_messages(CHANNEL)] == [ids.thread_ts], "one message in the channel"
    assert f"Race `{race.id}`" in json.dumps(root.blocks) and "add the feature" in json.dumps(root.blocks)
    for task in (clean, red, clash):
        attempt_ids = b.thread_of(task)
        assert attempt_ids.thread_ts == ids.thread_ts and attempt_ids.card_ts, "each attempt's card is in the thread"
        card = b.fake.messages[(CHANNEL, attempt_ids.card_ts)]
        assert f"Attempt {task.race_label}" in json.dumps(card.blocks)
        assert attempt_ids.review_ts and b.fake.messages[(CHANNEL, attempt_ids.review_ts)].thread_ts == ids.thread_ts

    await eventually(lambda: b.slack.frontend.races.messages.get(race.id).card_ts, what="the comparison card")
    await b.settle()
    card_ts = b.slack.frontend.races.messages.get(race.id).card_ts
    card = b.fake.messages[(CHANNEL, card_ts)]
    text = json.dumps(card.blocks)
    for task in (clean, red, clash):  # every figure of each attempt's own review is on the card
        f = AttemptFigures.of(task.race_label or "", task)
        review = task.review_data() or {}
        assert f.files == len(review["files"]) and f"+{review['insertions']} / -{review['deletions']}" in text
        assert f"Attempt {task.race_label}" in text and task.preset in text
    assert "checks failed" in text and "merges cleanly" in text and "conflicts in `shared.txt`" in text
    assert text.count("$0.18") == 3, "each attempt's cost"
    assert {"race_pick_A", "race_view_diff_A", "race_pick_B"} <= set(buttons(card)) and "race_diff_pair" in text

    # `compare` from the channel points at the card and lists the same figures
    _, key = await b.command(f"compare {race.id}")
    await b.settle()
    answered = " ".join(b.answers(key))
    assert "The comparison card of race" in answered and "checks failed" in answered, answered
    assert b.slack.frontend.races.messages.get(race.id).card_ts == card_ts, "the card is updated, not posted again"

    # Diff A vs B, posted in the thread as a file
    assert await select(b, "race_diff_pair", f"{race.id}:{clean.id}:{clash.id}", message_ts=card_ts) == 200
    await b.settle()
    (upload,) = [f for f in b.fake.files if f["thread_ts"] == ids.thread_ts]
    assert "shared.txt" in upload["content"].decode() and "src/feature.py" in upload["content"].decode()

    # a follow-up in the race thread, addressed to one attempt
    await b.event({"type": "app_mention", "user": "U0ALICE", "channel": CHANNEL, "ts": "99.1",
                   "thread_ts": ids.thread_ts, "text": f"<@{b.slack.frontend.bot_user_id}> B: make the checks pass"})
    await b.settle()
    await b.finished(red.id)
    assert (await b.engine.get(red.id)).runs == 2 and (await b.engine.get(clean.id)).runs == 1

    # App Home shows what each attempt cost so far
    await b.event({"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "home"})
    await b.settle()
    home = json.dumps(b.fake.calls_to("views.publish")[-1].args)
    assert home.count("$0.18") >= 2 and home.count("$0.37") == 1, "B ran twice"

    # two people click Pick on two attempts at once: exactly one is merged
    (s1, _), (s2, _), (s3, _) = await asyncio.gather(
        b.click("race_pick_A", clean.id, message_ts=card_ts), b.click("race_pick_B", red.id, user="U0BOB",
                                                                     message_ts=card_ts),
        b.click("race_pick_A", clean.id, user="U0BOB", message_ts=card_ts))
    assert (s1, s2, s3) == (200, 200, 200)
    for task in (clean, red, clash):
        await b.engine.wait_for(task.id, {MERGED, DISCARDED}, timeout=60)
    await b.settle()
    states = {t.race_label: (await b.engine.get(t.id)).state for t in (clean, red, clash)}
    assert sorted(states.values()) == [DISCARDED, DISCARDED, MERGED], states
    assert states["C"] == DISCARDED, "the conflicting attempt cannot be the winner"
    final, _ = await b.engine.get_race(race.id)
    assert final.state == RaceState.PICKED
    assert task_branches(b.repo) == [], "no attempt's branch is left"
    for task in attempts:
        assert not Path((await b.engine.get(task.id)).worktree or "/none").exists(), "no attempt's worktree is left"
    winner = await b.engine.get(final.winner or "")
    assert git(b.repo, "log", "-1", "--format=%s", "main").startswith(f"Merge task {winner.id}")

    card = b.fake.messages[(CHANNEL, card_ts)]
    assert not [a for a in buttons(card) if a.startswith("race_pick")] and "picked by" in json.dumps(card.blocks)
    assert "picked by" in json.dumps(b.fake.messages[(CHANNEL, ids.thread_ts)].blocks)

    # the digest's totals are the sum of the attempts' own costs
    digest = await b.slack.frontend.housekeeper.build_digest()
    runs = [await b.engine.get(t.id) for t in attempts]
    total = sum(r.runs for r in runs) * CLAUDE_SAMPLE_COST
    assert abs(digest.spend_by_user["U0ALICE"].cost_usd - total) < 1e-6
    assert b.fake.rejected == []
    assert "Traceback" not in all_text(b.fake)


async def test_a_race_from_the_form_compared_early_then_discarded_all(bot: Callable[..., Any]) -> None:
    """`/superset race 2` with no prompt opens the form with 2 attempts; its submission starts the race;
    Compare now posts the card while the agents still work; Discard all stops and removes them all."""
    b: Bot = await bot({"slow": preset("sleep")})
    trigger = b.fake.new_trigger_id()
    status, _ = await post(b, command_form(b, "race 2", "race-form", trigger_id=trigger),
                           "application/x-www-form-urlencoded")
    assert status == 200
    await b.settle()
    (view,) = b.fake.views["modals"].values()
    attempts = next(blk for blk in view["blocks"] if blk["block_id"] == "attempts")
    assert attempts["element"]["initial_option"]["value"] == "2", "the form keeps the count the command gave"
    values = {**modal_values("try it twice", preset_name="slow"),
              "attempts": {"attempts": {"type": "static_select", "selected_option": {"value": "2"}}}}
    status, body = await interactive(b, b.fake.view_submission_payload(view["id"], values=values, user_id=ALICE))
    assert status == 200 and not body.strip()
    race, tasks = await race_started(b)
    for task in tasks:
        await b.engine.wait_for(task.id, {"running"}, timeout=60)
    ids = b.slack.frontend.races.messages.get(race.id)
    assert ids is not None

    await b.click("race_compare", race.id, message_ts=ids.thread_ts)
    card_ts = await eventually(lambda: b.slack.frontend.races.messages.get(race.id).card_ts,
                               what="the card on Compare now")  # the agents still stream: no settling
    card = await eventually(lambda: b.fake.messages.get((CHANNEL, card_ts)), what="the card in Slack")
    assert json.dumps(card.blocks).count("no review yet") == 2 and "race_pick_A" not in buttons(card)

    await b.click("race_discard_all", race.id, message_ts=ids.thread_ts)
    for task in tasks:
        await b.engine.wait_for(task.id, {DISCARDED}, timeout=60)
    await b.settle()
    assert (await b.engine.get_race(race.id))[0].state == RaceState.DISCARDED
    root = b.fake.messages[(CHANNEL, ids.thread_ts)]
    assert "No attempt was kept" in json.dumps(root.blocks) and not buttons(root)
    assert task_branches(b.repo) == [] and b.fake.rejected == []

