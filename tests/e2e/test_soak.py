"""`make soak` in small, in `make test`: 20 tasks through the HTTP path with random fates and random
Slack 429/500 answers, then the soak's invariants (tests/soak/checks.py). `make soak` runs 100."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from soak.bot import CHANNELS, USERS, Stuck, start_bot
from soak.run import PLANS, make_plans, run_soak

from superset_bot.frontends.slack.blocks import ACTION_CANCEL
from superset_bot.store import CANCELLED, REVIEWABLE_STATES, RUNNING

# a fixed seed whose 20 tasks meet every kind of fate (checked below), so a failure replays exactly:
# .venv/bin/python tests/soak --tasks 20 --seed 49
SEED = 49


def test_the_seed_gives_every_kind_of_task() -> None:
    plans = make_plans(20, SEED)
    assert {p.kind for p in plans} == set(PLANS)
    assert any(p.double for p in plans) and any(p.followup for p in plans)
    assert [p.kind for p in make_plans(20, SEED)] == [p.kind for p in plans], "plans depend on the seed alone"


@pytest.mark.timeout(300)
async def test_soak_20_tasks_with_random_slack_faults(tmp_path: Path) -> None:
    report = await run_soak(tmp_path, tasks=20, seed=SEED, concurrency=6, fault_rate=0.1, patience=45)
    print(report.summary())
    assert report.faults["429"] > 0 and report.faults["500"] > 0, "the run should have met Slack faults"
    assert report.actions["spawn"] == 20 and report.actions["follow-up"] > 0
    assert report.actions["race"] == 1, "a race runs beside the tasks"
    assert report.violations == [], report.summary()


async def test_two_cancel_clicks_at_once_on_a_queued_task(tmp_path: Path) -> None:
    """Found by the soak: cancel_queued with a double click left the task queued/preparing for ever."""
    sb = await start_bot(tmp_path, speed=20, concurrency=1)
    try:
        await sb.command("spawn [soak busy slow] hold the only slot", user=USERS[0], channel=CHANNELS[0])
        busy = await sb.tracker.wait(lambda: sb.tracker.by_key.get("busy"), 30, "no task")
        await sb.tracker.wait_state(busy, {RUNNING}, 30)
        await sb.command("spawn [soak waiting slow] wait in the queue", user=USERS[0], channel=CHANNELS[0])
        waiting = await sb.tracker.wait(lambda: sb.tracker.by_key.get("waiting"), 30, "no task")
        await asyncio.gather(*(sb.click(ACTION_CANCEL, waiting, user=USERS[0], channel=CHANNELS[0], message_ts="1.0")
                               for _ in range(2)))
        try:
            done = await sb.tracker.wait_state(waiting, REVIEWABLE_STATES, 8)
        except Stuck as exc:
            raise AssertionError(str(exc)) from None
        assert done.state == CANCELLED
    finally:
        await sb.stop()


@pytest.mark.timeout(600)
def test_crash_soak_kill_9_mid_run_then_restart_leaves_nothing(tmp_path: Path) -> None:
    # `python tests/soak crash` in small: the console bot killed with SIGKILL part way, started again
    from soak.crash import run as crash_run

    lines, violations = crash_run(30, 7, tmp_path, 6)
    print("\n".join(lines))
    assert any(line.startswith("kill -9 after") for line in lines)
    assert violations == [], "\n".join(lines + violations)
