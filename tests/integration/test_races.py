"""Races through the service and the engine: attempts of different quality from one base commit, the
comparison figures read from each attempt's own review, Pick merging exactly one and discarding the
rest (however many click, on whichever attempts), a refused pick discarding nothing, Discard all,
follow-ups addressed to one attempt or all, Diff A vs B, and a pick interrupted by a restart.
Real git, real agent processes, real SQLite."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from support.engineharness import (
    CLAUDE_SAMPLE_COST,
    Harness,
    MakeHarness,
    agent_preset,
    costed_preset,
    make_engine,
)
from support.gitfiles import branches

from superset_bot.composition import build_service
from superset_bot.domain.events import Milestone
from superset_bot.domain.race import RaceState
from superset_bot.engine.errors import UserError
from superset_bot.frontends.console import Console
from superset_bot.service import Caller
from superset_bot.service.plain import answer
from superset_bot.service.results import (
    AttemptsDiff,
    Done,
    Failed,
    NeedsPrompt,
    RaceDone,
    RaceFollowups,
    RaceStarted,
    RaceView,
)
from superset_bot.store import DISCARDED, MERGED, REVIEWABLE_STATES

PRESETS = {
    "clean": costed_preset("edit"),
    "red": costed_preset("edit", checks=["false"]),
    "clash": costed_preset("conflict", env={"CONFLICT_FILE": "shared.txt"}),
}
ALICE = Caller("U0ALICE")


def task_branches(repo: Path) -> list[str]:
    return [b for b in branches(repo) if b.startswith("superset/")]


async def race(h: Harness, text: str, caller: Caller = ALICE) -> RaceStarted:
    result = await build_service(h.engine).command(caller, text)
    assert isinstance(result, RaceStarted), result
    for task in result.attempts:
        await h.settled(task.id)
    return result


async def test_three_attempts_start_from_one_commit_and_one_pick_keeps_one(harness: MakeHarness) -> None:
    h = await harness(PRESETS)
    service = build_service(h.engine)
    started = await service.command(ALICE, "race --presets clean,red,clash add the feature")
    assert isinstance(started, RaceStarted), started
    # a person commits to main at once: the attempts still start where the race did, and the clashing
    # one's review (built after its agent) finds the conflict
    (h.repo / "shared.txt").write_text("a person's version\n")
    git(h.repo, "commit", "-qam", "person edits shared.txt")
    for task in started.attempts:
        await h.settled(task.id)
    a, b, c = started.attempts
    assert [t.race_label for t in started.attempts] == ["A", "B", "C"]
    assert [t.preset for t in started.attempts] == ["clean", "red", "clash"]
    attempts = [await h.engine.get(t.id) for t in started.attempts]
    assert {t.base_commit for t in attempts} == {started.race.base_commit}, "one base commit for all"
    assert git(h.repo, "rev-parse", "main^") == started.race.base_commit
    assert len({t.worktree for t in attempts}) == 3 and len({t.branch for t in attempts}) == 3
    assert all(t.state in REVIEWABLE_STATES for t in attempts)

    view = await service.act_race(ALICE, "compare", started.race.id)
    assert isinstance(view, RaceView)
    figures = {f.label: f for f in view.figures}
    for label, task in zip("ABC", [await h.engine.get(t.id) for t in started.attempts], strict=True):
        review = task.review_data() or {}
        f = figures[label]
        assert (f.files, f.insertions, f.deletions) == (len(review["files"]), review["insertions"],
                                                         review["deletions"]), "the card's figures are the review's"
        assert f.cost_usd == pytest.approx(review["cost_usd"]) == pytest.approx(CLAUDE_SAMPLE_COST)
        assert f.tokens_in == review["tokens_in"] and f.duration_s == review["duration_s"]
    assert figures["A"].checks is None and figures["B"].checks is False, "B's checks failed"
    assert figures["A"].clean is True and figures["C"].clean is False and figures["C"].conflicts == ("shared.txt",)

    picked = await service.act(ALICE, "merge", a.id)
    assert isinstance(picked, Done) and picked.task.state == MERGED
    assert "Picked attempt A" in answer(picked)
    for other in (b, c):
        assert (await h.engine.get(other.id)).state == DISCARDED
    rc, attempts_now = await h.engine.get_race(started.race.id)
    assert rc.state == RaceState.PICKED and rc.winner == a.id and rc.closed_by == "U0ALICE"
    assert task_branches(h.repo) == [] and not any(Path(t.worktree or "/nonexistent").exists() for t in attempts_now)
    assert (h.repo / "src" / "feature.py").exists(), "the winner's work is on main"

    again = await service.act(ALICE, "merge", b.id)
    assert not again.ok  # closed
    digest_total = (await h.store.spend_since(0, "requester"))["U0ALICE"].cost_usd
    costs = [((await h.engine.get(t.id)).review_data() or {})["cost_usd"] for t in started.attempts]
    assert digest_total == pytest.approx(sum(costs)) == pytest.approx(3 * CLAUDE_SAMPLE_COST)


async def test_concurrent_picks_of_two_attempts_merge_exactly_one(harness: MakeHarness) -> None:
    h = await harness({"clean": agent_preset("edit"), "other": agent_preset("edit")})
    started = await race(h, "race --presets clean,other add the feature")
    a, b = started.attempts
    head_before = git(h.repo, "rev-parse", "main").strip()
    results = await asyncio.gather(h.engine.merge(a.id, "U1"), h.engine.merge(b.id, "U2"),
                                   h.engine.merge(a.id, "U3"), return_exceptions=True)
    merged = [r for r in results if not isinstance(r, BaseException)]
    assert len(merged) == 1 or (len(merged) == 2 and merged[0].id == merged[1].id), results
    assert all(isinstance(r, UserError) for r in results if isinstance(r, BaseException)), results
    states = sorted([(await h.engine.get(t.id)).state for t in started.attempts])
    assert states == [DISCARDED, MERGED]
    log = git(h.repo, "log", "--format=%s", f"{head_before}..main").splitlines()
    assert len([line for line in log if line.startswith("Merge task")]) == 1, log
    assert (await h.engine.get_race(started.race.id))[0].state == RaceState.PICKED


async def test_a_refused_pick_discards_nothing_and_the_race_stays_open(harness: MakeHarness) -> None:
    h = await harness({"clash": agent_preset("conflict", env={"CONFLICT_FILE": "shared.txt"}),
                       "clean": agent_preset("edit")})
    started = await race(h, "race --presets clash,clean change things")
    clash, clean = started.attempts
    (h.repo / "shared.txt").write_text("a person's version\n")
    git(h.repo, "commit", "-qam", "person edits shared.txt")
    result = await build_service(h.engine).act(ALICE, "merge", clash.id)
    assert isinstance(result, Failed) and "conflicts" in result.message
    assert (await h.engine.get_race(started.race.id))[0].state == RaceState.OPEN
    assert (await h.engine.get(clean.id)).state in REVIEWABLE_STATES, "nothing was discarded"
    merged = await h.engine.merge(clean.id, "U0ALICE")
    assert merged.state == MERGED and (await h.engine.get(clash.id)).state == DISCARDED


async def test_discard_all_stops_running_attempts_and_leaves_nothing(harness: MakeHarness) -> None:
    h = await harness({"slow": agent_preset("sleep"), "clean": agent_preset("edit")})
    service = build_service(h.engine)
    started = await service.command(ALICE, "race --presets slow,clean try it")
    assert isinstance(started, RaceStarted)
    slow, clean = started.attempts
    await h.settled(clean.id)
    await h.engine.wait_for(slow.id, {"running"}, timeout=60)
    picked = await service.act(ALICE, "merge", slow.id)
    assert isinstance(picked, Failed) and "still running" in picked.message
    done = await service.act_race(ALICE, "discard_all", started.race.id)
    assert isinstance(done, RaceDone) and done.race.state == RaceState.DISCARDED
    for t in started.attempts:
        assert (await h.engine.get(t.id)).state == DISCARDED
    assert task_branches(h.repo) == []
    again = await service.act_race(ALICE, "discard_all", started.race.id)
    assert isinstance(again, Failed) and "over" in again.message


async def test_a_follow_up_goes_to_the_attempt_it_names_or_to_all(harness: MakeHarness) -> None:
    h = await harness({"f": agent_preset("followup")})
    service = build_service(h.engine)
    started = await race(h, "race 3 first run")
    a, b, c = started.attempts
    listed = answer(await service.command(ALICE, "list"))
    assert all(f"attempt {label} of race `{started.race.id}`" in listed for label in "ABC"), listed
    sent = await service.act_race(ALICE, "followup", started.race.id, "B: only for b")
    assert isinstance(sent, RaceFollowups) and [s[0] for s in sent.sent] == ["B"]
    await h.settled(b.id)
    sent = await service.act_race(ALICE, "followup", started.race.id, "A lot is missing: add tests")
    assert isinstance(sent, RaceFollowups) and [s[0] for s in sent.sent] == ["A", "B", "C"]
    for t in started.attempts:
        await h.settled(t.id)
    runs = {t.race_label: (Path((await h.engine.get(t.id)).worktree or "") / "RUNS.md").read_text().splitlines()
            for t in started.attempts}
    assert runs["B"] == ["first run", "only for b", "A lot is missing: add tests"]
    assert runs["A"] == runs["C"] == ["first run", "A lot is missing: add tests"]


async def test_diff_between_two_attempts_is_redacted(harness: MakeHarness) -> None:
    h = await harness({"clean": agent_preset("edit"), "leak": agent_preset("leak", env={"MY_API_TOKEN": "tok-123456789-secret"})})
    service = build_service(h.engine)
    started = await race(h, "race --presets clean,leak do it")
    a, b = started.attempts
    diff = await service.act_race(ALICE, "diff", started.race.id, a.id, b.id)
    assert isinstance(diff, AttemptsDiff) and diff.patch.strip()
    assert "tok-123456789-secret" not in diff.patch


async def test_race_input_gets_clear_answers(harness: MakeHarness) -> None:
    h = await harness({"clean": agent_preset("edit")}, env={"SUPERSET_RACE_MAX_ATTEMPTS": "3"})
    service = build_service(h.engine)
    for text, words in (("race fix it", "Say how many attempts"), ("race 1 fix it", "at least 2"),
                        ("race 4 fix it", "more than this bot allows in one race (3"),
                        ("race --presets clean,nope fix it", 'Unknown preset "nope"'),
                        ("race 3 --presets clean,clean fix it", "3 attempts but 2 presets"),
                        ("race --presets clean,clean 3 fix it", "3 attempts but 2 presets")):
        result = await service.command(ALICE, text)
        assert not result.ok and words in getattr(result, "message", getattr(result, "reason", "")), (text, result)
    assert await h.store.list_tasks() == [], "nothing was started"


async def test_a_race_past_the_daily_budget_is_refused(harness: MakeHarness) -> None:
    h = await harness({"costly": costed_preset("edit")}, env={"SUPERSET_DAILY_BUDGET_PER_USER": "0.30"})
    await race(h, "race 2 spend some")  # two runs at $0.1834 each: $0.37
    refused = await build_service(h.engine).command(ALICE, "race 2 spend more")
    assert isinstance(refused, Failed) and "past the daily budget of $0.30" in refused.message
    assert len(await h.store.list_tasks()) == 2


async def test_a_pick_interrupted_by_a_restart_is_finished(harness: MakeHarness) -> None:
    h = await harness({"clean": agent_preset("edit"), "other": agent_preset("edit")})
    started = await race(h, "race --presets clean,other add it")
    a, b = started.attempts
    # the state a kill between the winner's merge and the others' discard leaves behind
    claimed = await h.store.race_transition(started.race.id, RaceState.PICKING, "U1", expect={RaceState.OPEN},
                                            winner=a.id, closed_by="U1")
    assert claimed is not None
    await h.engine.merging.merge(a.id, "U1")
    await h.engine.stop()
    again = await make_engine(h.settings)
    try:
        await again.start()
        race_now, attempts = await again.get_race(started.race.id)
        assert race_now.state == RaceState.PICKED
        assert [t.state for t in attempts] == [MERGED, DISCARDED]
    finally:
        await again.stop()
        await again.store.close()


async def test_a_merge_cut_by_a_restart_settles_the_race_once(harness: MakeHarness) -> None:
    h = await harness({"edit": agent_preset("edit")})
    started = await race(h, "race 4 add it")
    a = started.attempts[0]
    # a kill after git merged the winner and before the bot recorded it: race picking, winner merging
    claimed = await h.store.race_transition(started.race.id, RaceState.PICKING, "U1", expect={RaceState.OPEN},
                                            winner=a.id, closed_by="U1")
    assert claimed is not None
    winner = await h.store.transition(a.id, "merging", "U1", expect=REVIEWABLE_STATES)
    assert winner is not None and winner.branch
    git(h.repo, "merge", "-q", "--no-ff", "-m", f"Merge task {a.id}", winner.branch)
    await h.store.update_task(a.id, merge_commit=git(h.repo, "rev-parse", "main"))
    await h.engine.stop()
    again = await make_engine(h.settings)
    seen: list[Any] = []
    again.subscribe(seen.append)
    try:
        await again.start()
        for attempt in started.attempts[1:]:
            await again.wait_for(attempt.id, {DISCARDED}, timeout=60)

        async def picked() -> bool:
            return (await again.get_race(started.race.id))[0].state == RaceState.PICKED
        for _ in range(200):
            if await picked():
                break
            await asyncio.sleep(0.05)
        race_now, attempts = await again.get_race(started.race.id)
        assert race_now.state == RaceState.PICKED and [t.state for t in attempts] == [MERGED] + [DISCARDED] * 3
        assert not [e for e in seen if isinstance(e, Milestone) and e.kind == "race_discard_failed"], \
            "one pass discarded the others, and nothing was said to be left behind"
    finally:
        await again.stop()
        await again.store.close()


async def test_a_follow_up_to_an_attempt_the_race_lacks_is_refused(harness: MakeHarness) -> None:
    h = await harness({"f": agent_preset("followup")})
    service = build_service(h.engine)
    started = await race(h, "race 2 first run")
    refused = await service.act_race(ALICE, "followup", started.race.id, "A & D: do more")
    assert isinstance(refused, Failed) and "no attempt D (its attempts: A, B)" in refused.message
    for attempt in started.attempts:
        assert (await h.engine.get(attempt.id)).runs == 1, "nothing was sent"
    sent = await service.act_race(ALICE, "followup", started.race.id, "*B*: bold in Slack")
    assert isinstance(sent, RaceFollowups) and [s[0] for s in sent.sent] == ["B"]


async def test_race_without_a_prompt_asks_for_one_keeping_what_was_said(harness: MakeHarness) -> None:
    h = await harness({"edit": agent_preset("edit"), "other": agent_preset("edit")},
                      env={"SUPERSET_RACE_MAX_ATTEMPTS": "3"})
    service = build_service(h.engine)
    asked = await service.command(ALICE, "race --presets edit,other")
    assert isinstance(asked, NeedsPrompt) and asked.command == "race"
    assert asked.options == {"presets": "edit,other", "attempts": "2"}
    too_many = await service.command(ALICE, "race 9")
    assert isinstance(too_many, Failed) and "more than this bot allows in one race (3" in too_many.message


async def test_the_console_follows_a_race_and_says_merge_picks(harness: MakeHarness) -> None:
    h = await harness({"edit": agent_preset("edit")})
    out = io.StringIO()
    console = Console(build_service(h.engine), out)
    h.engine.subscribe(console.on_event)
    started = await race(h, "race 2 add it")
    await h.engine.merge(started.attempts[1].id, "console")
    text = out.getvalue()
    assert f"[race {started.race.id}] open; attempts A, B" in text
    assert f"merge {started.attempts[0].id} (picks attempt A: the race's others are discarded)" in text
    assert f"[race {started.race.id}] attempt B picked by console; the others discarded" in text
