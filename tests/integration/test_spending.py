"""What agents cost: each run's reported cost in the ledger, the digest's totals per person and repo
matching the tasks' own figures, daily budgets refusing a spawn with the figures, and a running task
that passes its requester's budget warned about once. Real agent processes printing Claude Code's
stream (its result carries the cost), real SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.engineharness import Harness, MakeHarness

from superset_bot.domain.events import Milestone
from superset_bot.domain.spend import Spend, day_start
from superset_bot.engine.errors import UserError
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.service.plain import digest_lines, spend_lines

SAMPLE = Path(__file__).parents[1] / "samples" / "claude_stream.jsonl"  # its result: $0.1834
COST = 0.1834


def costly(linger: float = 0) -> dict[str, dict[str, Any]]:
    script = f"cat {SAMPLE}; sleep {linger}"
    return {"costly": {"agent": {"command": ["sh", "-c", script, "{prompt}"], "format": "claude-stream-json"}}}


async def finished(h: Harness, requester: str) -> str:
    task = await h.engine.spawn("make it so", requester=requester)
    await h.settled(task.id)
    return task.id


async def test_each_run_goes_into_the_ledger_and_the_digest_totals_match_the_tasks(harness: MakeHarness) -> None:
    h = await harness(costly())
    ids = [await finished(h, "U1"), await finished(h, "U1"), await finished(h, "U2")]
    by_user = await h.store.spend_since(0, "requester")
    assert by_user["U1"].cost_usd == pytest.approx(2 * COST) and by_user["U1"].runs == 2
    assert by_user["U2"].cost_usd == pytest.approx(COST)
    per_task = [((await h.engine.get(i)).review_data() or {})["cost_usd"] for i in ids]
    assert sum(per_task) == pytest.approx(sum(s.cost_usd for s in by_user.values())), "the reviews' figures add up"
    digest = await Housekeeper(h.engine).build_digest()
    assert digest.spend_by_repo["demo"].cost_usd == pytest.approx(3 * COST)
    assert {i: s.brief() for i, s in digest.spend_by_task.items()} == {i: "$0.18" for i in ids}, "each task's cost"
    assert all("[$0.18]" in line for line in digest_lines(digest) if any(i in line for i in ids))
    assert spend_lines(digest)[0].startswith("Spend by person: U1 $0.37 (")
    assert spend_lines(digest)[1].startswith("Spend by repo: demo $0.55 (")


async def test_a_spawn_past_a_daily_budget_is_refused_with_the_figures(harness: MakeHarness) -> None:
    h = await harness(costly(), env={"SUPERSET_DAILY_BUDGET_PER_USER": "0.30", "SUPERSET_DAILY_BUDGET_PER_REPO": "$0.50"})
    await finished(h, "U1")
    await finished(h, "U1")
    with pytest.raises(UserError, match=r"U1 has spent \$0\.37 \(.*\) today, past the daily budget of \$0\.30 "
                                        r"\(SUPERSET_DAILY_BUDGET_PER_USER\)"):
        await h.engine.spawn("one more", requester="U1")
    await finished(h, "U2")  # another person still may, until the repo's budget
    with pytest.raises(UserError, match=r"repo demo has spent \$0\.55 .* \$0\.50 \(SUPERSET_DAILY_BUDGET_PER_REPO\)"):
        await h.engine.spawn("one more", requester="U3")
    assert len(await h.store.list_tasks()) == 3, "nothing was created for the refused spawns"
    first = (await h.store.list_tasks(newest_first=False))[0]
    with pytest.raises(UserError, match="No follow-up: U1 has spent"):
        await h.engine.followup(first.id, "and one more thing", "U1")


async def test_a_running_task_that_passes_the_budget_is_warned_once(harness: MakeHarness) -> None:
    h = await harness(costly(linger=3), env={"SUPERSET_DAILY_BUDGET_PER_USER": "0.10"})
    first = await h.engine.spawn("make it so", requester="U1")

    async def warned() -> list[Milestone]:
        while not [m for m in h.of(first.id, Milestone) if m.kind == "budget"]:
            await asyncio.sleep(0.05)
        return [m for m in h.of(first.id, Milestone) if m.kind == "budget"]
    (note,) = await asyncio.wait_for(warned(), 30)
    assert note.text.startswith("Today's spend of U1 passed the daily budget of $0.10: $0.18") and not note.ok
    await h.settled(first.id)
    assert (await h.engine.get(first.id)).state == "finished", "the agent was not stopped"
    assert len([m for m in h.of(first.id, Milestone) if m.kind == "budget"]) == 1, "once"
    with pytest.raises(UserError, match="past the daily budget"):
        await h.engine.spawn("again", requester="U1")


def test_usage_sums_and_says_what_it_cannot_price() -> None:
    priced = Spend.of_usage({"cost_usd": 0.5, "tokens_in": 1000, "tokens_out": 200})
    tokens_only = Spend.of_usage({"cost_usd": None, "tokens_in": 5000, "tokens_out": 100})
    assert priced.text() == "$0.50 (1.2k tokens)" and tokens_only.text() == "5.1k tokens"
    both = priced.plus(tokens_only)
    assert both.text() == "$0.50 (6.3k tokens; 1 run with tokens only)" and both.runs == 2
    assert Spend.of_usage({"cost_usd": True, "tokens_in": "x"}) == Spend(runs=1), "nothing made up"
    # midnight in the configured zone: 2026-12-07 23:30 UTC is already the 8th in Berlin
    assert day_start(1796686200.0, "Europe/Berlin") == 1796684400.0
    assert day_start(1796686200.0, "UTC") == 1796601600.0
