"""Prune, reconcile, digest and maintenance with a clock the tests move: hours pass in no time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conftest import git
from support.engineharness import FakeClock, MakeHarness, agent_preset

from superset_bot.domain.events import Milestone, PruneWarning
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.housekeeping.scheduler import build_scheduler
from superset_bot.store import (
    DISCARDED,
    DISCARDING,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    PREPARING,
    PRUNED,
    RUNNING,
    Task,
)

HOUR = 3600.0


async def finished_task(h: MakeHarness | object, prompt: str = "work") -> Task:
    task = await h.engine.spawn(prompt, requester="U1")  # type: ignore[attr-defined]
    return await h.settled(task.id, {FINISHED})  # type: ignore[attr-defined]


async def test_stale_task_is_warned_then_pruned_and_keep_resets(harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await harness(clock=clock, env={"SUPERSET_STALE_AFTER": "72h", "SUPERSET_PRUNE_WARNING": "24h"})
    keeper = Housekeeper(h.engine)
    task = await finished_task(h)
    assert (await keeper.prune()).empty, "a fresh task is left alone"

    clock.advance(50 * HOUR)
    report = await keeper.prune()
    assert len(report.warned) == 1 and task.id in report.warned[0] and not report.pruned
    warnings = h.of(task.id, PruneWarning)
    assert warnings and warnings[0].grace_s == 24 * HOUR
    clock.advance(10 * HOUR)
    assert (await keeper.prune()).empty, "warned once, and the grace period is not over"

    await h.engine.keep(task.id, "U1")  # the Keep button
    clock.advance(30 * HOUR)
    assert (await keeper.prune()).empty, "keep reset the idle clock"

    clock.advance(25 * HOUR)  # idle 55h: warned again
    assert len((await keeper.prune()).warned) == 1
    clock.advance(24 * HOUR)  # idle 79h, warned 24h ago
    report = await keeper.prune()
    assert len(report.pruned) == 1
    pruned = await h.engine.get(task.id)
    assert pruned.state == PRUNED and "idle for" in (pruned.reason or "")
    assert not Path(task.worktree or "").exists()
    assert git(h.repo, "branch", "--list", task.branch or "") == ""
    assert any(e.action == "prune_warning" for e in await h.store.events(task.id))


async def test_dry_run_changes_nothing(harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await harness(clock=clock)
    keeper = Housekeeper(h.engine)
    task = await finished_task(h)
    orphan = h.settings.worktrees_dir / "demo" / "zzzzzz"
    git(h.repo, "worktree", "add", "-q", "-b", "superset/zzzzzz-orphan", str(orphan))
    clock.advance(100 * HOUR)
    events_before = len(await h.store.events())
    report = await keeper.prune(dry_run=True)
    assert any("would warn" in line for line in report.lines())
    assert any("orphan worktree" in line for line in report.lines())
    assert orphan.exists() and (await h.engine.get(task.id)).prune_warned_at is None
    assert len(await h.store.events()) == events_before


async def test_orphans_and_leftovers_are_cleaned(harness: MakeHarness) -> None:
    h = await harness()
    keeper = Housekeeper(h.engine)
    task = await finished_task(h)
    await h.engine.merge(task.id, "U1")
    # a leftover: the merged task's branch came back (e.g. a failed cleanup), and an orphan branch
    git(h.repo, "branch", task.branch or "", "main")
    git(h.repo, "branch", "superset/qqqqqq-nobody-knows", "main")
    orphan = h.settings.worktrees_dir / "demo" / "zzzzzz"
    git(h.repo, "worktree", "add", "-q", "-b", "superset/zzzzzz-orphan", str(orphan))
    report = await keeper.prune()
    text = "\n".join(report.lines())
    assert "leftovers of merged task" in text and "orphan worktree" in text and "orphan branch" in text
    assert git(h.repo, "branch", "--list", "superset/*") == ""
    assert not orphan.exists()
    assert (await h.engine.get(task.id)).state == MERGED


async def test_disk_budget_prunes_oldest_idle_first_never_running(harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await harness({"edit": agent_preset("edit"), "sleep": agent_preset("sleep")}, clock=clock,
                      env={"SUPERSET_DISK_BUDGET": "10"})
    keeper = Housekeeper(h.engine)
    old = await finished_task(h, "old one")
    clock.advance(HOUR)
    new = await finished_task(h, "new one")
    running = await h.engine.spawn("still going", requester="U1", preset="sleep")
    await h.engine.wait_for(running.id, {RUNNING})
    report = await keeper.prune()
    order = [line.split()[1] for line in report.pruned]
    assert order[:2] == [old.id, new.id], report.lines()
    assert running.id not in " ".join(report.lines())
    assert (await h.engine.get(running.id)).state == RUNNING
    await h.engine.cancel(running.id, "U1")


async def test_reconcile_marks_vanished_worktree_and_stops_disk_hog(harness: MakeHarness) -> None:
    h = await harness({"edit": agent_preset("edit"),
                       "hog": {**agent_preset("sleep"), "limits": {"disk": "1K"}}})
    keeper = Housekeeper(h.engine)
    task = await finished_task(h)
    git(h.repo, "worktree", "remove", "--force", task.worktree or "")
    hog = await h.engine.spawn("fill the disk", requester="U1", preset="hog")
    await h.engine.wait_for(hog.id, {RUNNING})
    (Path((await h.engine.get(hog.id)).worktree or "") / "big.bin").write_bytes(b"x" * 4096)
    fixed = await keeper.reconcile()
    assert any("worktree vanished" in f for f in fixed)
    assert (await h.engine.get(task.id)).state == PRUNED
    stopped = await h.settled(hog.id)
    assert stopped.state == "failed" and "disk limit" in (stopped.reason or "")


async def test_digest_content_and_skip_when_empty(harness: MakeHarness) -> None:
    clock = FakeClock()
    h = await harness(clock=clock)
    keeper = Housekeeper(h.engine)
    posted: list[object] = []

    async def sink(digest: object) -> None:
        posted.append(digest)

    keeper.digest_sinks.append(sink)
    assert await keeper.digest() is None and posted == [], "nothing to say: nothing posted"
    waiting = await finished_task(h, "awaiting review")
    merged = await finished_task(h, "to merge")
    await h.engine.merge(merged.id, "U1")
    digest = await keeper.digest()
    assert digest is not None and posted == [digest]
    assert [t.id for t in digest.awaiting] == [waiting.id]
    assert [t.id for t in digest.closed] == [merged.id]
    assert digest.disk["demo"] > 0 and digest.free_disk > 0
    clock.advance(60)
    again = await keeper.build_digest()
    assert again.closed == [], "closed tasks are reported once"

    from superset_bot.frontends.slack.blocks import digest_message, validate_blocks

    rendered = digest_message(digest, lambda t: f"https://x.slack.com/archives/C1/p{t.id}")
    assert validate_blocks(rendered.blocks) == []
    assert waiting.id in json.dumps(rendered.blocks) and "Awaiting review" in json.dumps(rendered.blocks)


async def test_maintenance_skips_busy_repos(harness: MakeHarness) -> None:
    h = await harness({"sleep": agent_preset("sleep")})
    keeper = Housekeeper(h.engine)
    assert await keeper.maintenance() == ["demo: maintained"]
    task = await h.engine.spawn("busy", requester="U1")
    await h.engine.wait_for(task.id, {RUNNING})
    assert await keeper.maintenance() == ["demo: skipped, an agent is running"]
    await h.engine.cancel(task.id, "U1")


async def test_scheduler_jobs_built_from_settings(harness: MakeHarness) -> None:
    h = await harness(env={"SUPERSET_DIGEST_CHANNEL": "C0DIGEST", "SUPERSET_DIGEST_CRON": "0 9 * * mon-fri",
                           "SUPERSET_TIMEZONE": "Europe/Berlin"})
    scheduler = build_scheduler(Housekeeper(h.engine))
    assert {job.id for job in scheduler.get_jobs()} == {"prune", "reconcile", "git-maintenance", "digest"}
    digest_job = scheduler.get_job("digest")
    assert "mon-fri" in repr(digest_job.trigger) and "Europe/Berlin" in repr(digest_job.trigger)
    h2 = await harness(repo=h.repo)
    assert "digest" not in {job.id for job in build_scheduler(Housekeeper(h2.engine)).get_jobs()}
    # a worker host's: no prune (the bot decides when its tasks go), no digest
    worker = build_scheduler(Housekeeper(h.engine), worker_host=True)
    assert {job.id for job in worker.get_jobs()} == {"reconcile", "git-maintenance"}


async def test_a_task_being_prepared_is_not_an_orphan(harness: MakeHarness) -> None:
    """Its worktree exists before the store knows its path: prune must not take it for an orphan."""
    h = await harness()
    keeper = Housekeeper(h.engine)
    await h.store.create_task(Task(id="prep42", repo="demo", prompt="p", preset="edit", state="preparing"), "U1")
    path = h.settings.worktrees_dir / "demo" / "prep42"
    git(h.repo, "worktree", "add", "-q", "-b", "superset/prep42-p", str(path))
    report = await keeper.prune()
    assert "prep42" not in "\n".join(report.lines())
    assert path.exists() and git(h.repo, "branch", "--list", "superset/prep42-p")


async def test_what_a_closed_task_left_unrecorded_is_removed_in_one_cycle(harness: MakeHarness) -> None:
    """A discarded, merged or pruned task owns nothing: its worktree and branch go, recorded or not.

    The task row of a task cancelled while its worktree was being made has no worktree or branch
    stored; only the names (worktrees/<repo>/<id>, superset/<id>-...) tie them to it. A merged task
    of a preset that keeps branches keeps its stored branch; warm pool spares stay.
    """
    h = await harness({"edit": agent_preset("edit"), "keep": {**agent_preset("edit"), "keep_branch": True}},
                      env={"SUPERSET_POOL_SIZE": "1"})
    await h.engine.pool.wait_ready("demo")
    keeper = Housekeeper(h.engine)
    root = h.settings.worktrees_dir / "demo"
    made = {}
    for task_id, state in (("gone01", "discarded"), ("gone02", "merged"), ("gone03", "pruned"),
                           ("gone04", "cancelled")):
        await h.store.create_task(Task(id=task_id, repo="demo", prompt="p", preset="edit", state=state), "U1")
        git(h.repo, "worktree", "add", "-q", "-b", f"superset/{task_id}-p", str(root / task_id))
        made[task_id] = root / task_id
    # a taken pool worktree that never got its task's name, and a branch with no worktree
    git(h.repo, "worktree", "add", "-q", "-b", "superset/gone05-p", str(root / ".pool-0badf00d"))
    await h.store.create_task(Task(id="gone05", repo="demo", prompt="p", preset="edit", state="discarded"), "U1")
    git(h.repo, "branch", "superset/gone06-p", "main")
    await h.store.create_task(Task(id="gone06", repo="demo", prompt="p", preset="edit", state="discarded"), "U1")
    kept = await finished_task(h, "keep my branch")
    kept = await h.engine.merge((await h.store.update_task(kept.id, preset="keep")).id, "U1")

    report = await keeper.prune()
    assert not report.errors, report.lines()
    branches = git(h.repo, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/superset/").split()
    assert sorted(branches) == sorted(["superset/gone04-p", kept.branch]), "only an open task's and a kept branch stay"
    assert not made["gone01"].exists() and not made["gone02"].exists() and not made["gone03"].exists()
    assert made["gone04"].is_dir(), "a cancelled task is open (reviewable): its worktree stays"
    assert not (root / ".pool-0badf00d").exists()
    assert h.engine.pool.ready("demo") == 1, "the warm spare is the pool's, not an orphan"
    spares = [p for p in root.iterdir() if p.name.startswith(".pool-")]
    assert len(spares) == 1
    assert (await keeper.prune()).cleaned == [], "one cycle was enough"


async def test_a_task_hung_while_preparing_is_said_settled_and_reported_unhealthy(
    harness: MakeHarness, tmp_path: Path
) -> None:
    """Its setup never ends and nothing times it out: reconcile notices past the bound and ends it."""
    release = tmp_path / "release-setup"
    clock = FakeClock()
    hang = {**agent_preset("edit"), "setup": [f"while [ ! -e '{release}' ]; do sleep 0.05; done"],
            "setup_timeout": "10m"}
    h = await harness({"hang": hang}, clock=clock)
    keeper = Housekeeper(h.engine)
    try:
        task = await h.engine.spawn("hang in setup", requester="U1")
        for _ in range(600):
            current = await h.engine.get(task.id)
            if current.state == PREPARING and current.worktree:
                break
            await asyncio.sleep(0.05)
        assert current.state == PREPARING and current.worktree, current
        assert (await h.engine.health())["ok"]
        assert await keeper.reconcile() == [], "within its bound it is left alone"

        clock.advance(2 * HOUR)  # past twice the bound (setup timeout x (1 command + 2), at least 15 min)
        health = await h.engine.health()
        assert not health["ok"] and any(task.id in p and "preparing" in p for p in health["problems"]), health
        fixed = await keeper.reconcile()
        assert any(task.id in f and "preparing" in f for f in fixed), fixed
        settled = await h.engine.get(task.id)
        assert settled.state == FAILED and "hung" in (settled.reason or ""), settled
        said = [m for m in h.of(task.id, Milestone) if m.kind == "stuck"]
        assert said and "preparing" in said[0].text and not said[0].ok
        assert (await h.engine.health())["ok"]
        await h.engine.discard(task.id, "U1")  # reviewable, and its worktree goes with Discard
        assert not Path(current.worktree).exists()
        assert git(h.repo, "for-each-ref", "refs/heads/superset/") == ""
    finally:
        release.touch()


async def test_a_lost_merge_or_discard_claim_is_settled_by_reconcile(harness: MakeHarness) -> None:
    """Nothing in the process works on the claim any more (its request died): reconcile finishes it."""
    clock = FakeClock()
    h = await harness(clock=clock)
    keeper = Housekeeper(h.engine)
    merging = await finished_task(h, "one")
    discarding = await finished_task(h, "two")
    await h.store.transition(merging.id, MERGING, "U1", expect={FINISHED})
    await h.store.transition(discarding.id, DISCARDING, "U2", expect={FINISHED})
    assert await keeper.reconcile() == [], "a fresh claim may still be at work"
    clock.advance(5 * 60)
    fixed = "\n".join(await keeper.reconcile())
    assert merging.id in fixed and discarding.id in fixed, fixed
    assert (await h.engine.get(merging.id)).state == FINISHED, "the base never moved: back to review"
    gone = await h.engine.get(discarding.id)
    assert gone.state == DISCARDED and gone.closed_by == "U2"
    assert not Path(discarding.worktree or "").exists()
    assert [m.kind for m in h.of(discarding.id, Milestone)].count("stuck") == 1


async def test_a_queued_task_that_nothing_drives_is_picked_up_by_reconcile(harness: MakeHarness) -> None:
    """A queued row with no driver in this process (another process wrote it, or its driver died)
    does not wait for ever: the next reconcile starts it, and it runs to review."""
    h = await harness()
    keeper = Housekeeper(h.engine)
    orphan = await h.store.create_task(Task(id="q7rphn", repo="demo", prompt="work", preset="edit"), "U1")
    assert not h.engine.is_driven(orphan.id)
    fixed = "\n".join(await keeper.reconcile())
    assert orphan.id in fixed, fixed
    done = await h.settled(orphan.id, {FINISHED})
    assert done.branch and Path(done.worktree or "").is_dir()
    assert await keeper.reconcile() == [], "once driven, the task is left alone"
