"""The warm worktree pool: ready checkouts of the base head, taken by spawns, refreshed, adopted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from conftest import AGENTS_DIR, git
from support.engineharness import Harness, MakeHarness, agent_preset

from superset_bot.agents.runner import AgentRun
from superset_bot.domain.events import Milestone
from superset_bot.git.naming import POOL_PREFIX
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.store import FAILED, FINISHED, MERGED, PREPARING, QUEUED, Task, new_task_id

POOL = {"SUPERSET_POOL_SIZE": "2"}


def spares(h: Harness) -> list[Path]:
    root = h.settings.worktrees_dir / "demo"
    return sorted(p for p in root.iterdir() if p.name.startswith(POOL_PREFIX)) if root.exists() else []


def assert_clean_checkout(path: Path, repo: Path, sha: str) -> None:
    """Exactly the base commit's tree: HEAD there, nothing modified, nothing untracked, same bytes."""
    assert git(path, "rev-parse", "HEAD") == sha
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    tracked = git(path, "ls-files").splitlines()
    assert tracked == git(repo, "ls-tree", "-r", "--name-only", sha).splitlines()
    for name in tracked:
        expected = subprocess.run(["git", "show", f"{sha}:{name}"], cwd=repo, capture_output=True, check=True).stdout
        assert (path / name).read_bytes() == expected, name


async def wait_fresh(h: Harness, sha: str, count: int = 2, timeout: float = 30) -> None:
    """Until `count` spares are ready and every one of them is at `sha`."""
    async def fresh() -> None:
        while True:
            await h.engine.pool.wait_ready("demo", count=count, timeout=timeout)
            paths = spares(h)
            if len(paths) >= count and all(git(p, "rev-parse", "HEAD") == sha for p in paths):
                return
            await asyncio.sleep(0.1)
    await asyncio.wait_for(fresh(), timeout)


async def test_pool_fills_with_clean_checkouts_of_the_base_head(harness: MakeHarness) -> None:
    h = await harness(env=POOL)
    head = git(h.repo, "rev-parse", "main")
    await wait_fresh(h, head)
    assert len(spares(h)) == 2
    for path in spares(h):
        assert_clean_checkout(path, h.repo, head)
        assert "detached" in git(h.repo, "worktree", "list"), "a spare holds no branch"
    assert git(h.repo, "for-each-ref", "refs/heads/superset/") == "", "spares create no branches"


async def test_spawn_takes_a_warm_worktree_and_the_pool_refills(harness: MakeHarness) -> None:
    h = await harness(env=POOL)
    head = git(h.repo, "rev-parse", "main")
    await wait_fresh(h, head)
    before = set(spares(h))

    task = await h.engine.spawn("add a feature", requester="U1")
    done = await h.settled(task.id, {FINISHED})
    assert done.worktree == str(h.settings.worktrees_dir / "demo" / task.id), "renamed after its task"
    assert done.base_commit == head and done.branch and done.branch.startswith(f"superset/{task.id}/")
    assert git(Path(done.worktree), "rev-parse", "--abbrev-ref", "HEAD") == done.branch
    assert any(m.kind == "worktree_ready" and "(warm)" in m.text for m in h.of(task.id, Milestone))
    assert len(before - set(spares(h))) == 1, "exactly one spare was taken"

    await wait_fresh(h, head)
    assert len(spares(h)) == 2, "the pool refilled"
    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED
    assert "VALUE = 1" in git(h.repo, "show", "main:src/feature.py")
    await wait_fresh(h, git(h.repo, "rev-parse", "main"))  # a merge moves the base: spares follow
    for path in spares(h):
        assert_clean_checkout(path, h.repo, git(h.repo, "rev-parse", "main"))


async def test_spares_follow_the_base_and_a_spawn_never_starts_from_an_old_head(harness: MakeHarness) -> None:
    h = await harness(env=POOL)
    await wait_fresh(h, git(h.repo, "rev-parse", "main"))
    # someone pushes to main: a file changes, one is deleted, one is added
    (h.repo / "shared.txt").write_text("moved on\n")
    git(h.repo, "rm", "-q", "README.md")
    (h.repo / "new.txt").write_text("new\n")
    git(h.repo, "add", "-A")
    git(h.repo, "commit", "-q", "-m", "base moves")
    new_head = git(h.repo, "rev-parse", "main")

    task = await h.engine.spawn("right away", requester="U1")  # before the pool noticed
    done = await h.settled(task.id, {FINISHED})
    assert done.base_commit == new_head
    assert (Path(done.worktree or "") / "new.txt").exists()

    h.engine.pool.poke("demo")
    await wait_fresh(h, new_head)
    for path in spares(h):
        assert_clean_checkout(path, h.repo, new_head)


async def test_another_base_or_an_empty_pool_creates_a_worktree(harness: MakeHarness) -> None:
    h = await harness(env={"SUPERSET_POOL_SIZE": "1"})
    git(h.repo, "branch", "dev")
    git(h.repo, "checkout", "-q", "dev")
    (h.repo / "dev.txt").write_text("dev\n")
    git(h.repo, "add", "dev.txt")
    git(h.repo, "commit", "-q", "-m", "dev work")
    git(h.repo, "checkout", "-q", "main")
    await wait_fresh(h, git(h.repo, "rev-parse", "main"), count=1)

    on_dev = await h.engine.spawn("on dev", requester="U1", base="dev")
    # three at once: one gets the spare, the others create their own
    many = [await h.engine.spawn(f"task {i}", requester="U1") for i in range(3)]
    done = [await h.settled(t.id, {FINISHED}) for t in [on_dev, *many]]
    assert done[0].base_branch == "dev" and done[0].base_commit == git(h.repo, "rev-parse", "dev")
    assert (Path(done[0].worktree or "") / "dev.txt").exists()
    paths = {t.worktree for t in done}
    assert len(paths) == 4 and all(Path(p or "").is_dir() for p in paths)
    warm = [t for t in done if any("(warm)" in m.text for m in h.of(t.id, Milestone))]
    assert len(warm) == 1 and warm[0].base_branch == "main"


async def test_prewarm_runs_setup_before_the_task_and_not_again(harness: MakeHarness) -> None:
    presets = {
        "warm": agent_preset("edit", prewarm=True, copy=[".env"],
                             setup=['echo "$SUPERSET_WORKSPACE_PATH" >> "$HOME/setup-runs"', "touch .deps-installed"]),
    }
    h = await harness(presets, env=POOL)
    (h.repo / ".env").write_text("TOKEN=abc\n")  # untracked in the main checkout, copied by the preset
    head = git(h.repo, "rev-parse", "main")
    await h.engine.pool.wait_ready("demo", key="warm", timeout=30)
    runs_before = (Path(h.settings.process_env["HOME"]) / "setup-runs").read_text().splitlines()
    assert len(runs_before) >= 2, "setup ran in the spares, before any task"

    task = await h.engine.spawn("warm start", requester="U1", preset="warm")
    done = await h.settled(task.id, {FINISHED})
    worktree = Path(done.worktree or "")
    assert worktree.name.startswith(POOL_PREFIX), "a prewarmed worktree keeps the path its setup saw"
    assert str(worktree) in runs_before
    assert (worktree / ".deps-installed").exists() and (worktree / ".env").read_text() == "TOKEN=abc\n"
    assert any("ran ahead in the warm pool" in m.text for m in h.of(task.id, Milestone))
    runs_after = (Path(h.settings.process_env["HOME"]) / "setup-runs").read_text().splitlines()
    assert runs_after.count(str(worktree)) == 1, "setup did not run again for the task"
    assert done.base_commit == head
    assert ".env" not in git(worktree, "show", "--name-only", "HEAD"), "copied secrets are never committed"
    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED and not worktree.exists()


async def test_prewarm_that_changes_tracked_files_is_not_pooled(harness: MakeHarness) -> None:
    presets = {"edit": agent_preset("edit"),
               "messy": agent_preset("edit", prewarm=True, setup=["echo changed >> shared.txt"])}
    h = await harness(presets, env=POOL)
    await h.engine.pool.wait_ready("demo", timeout=30)  # plain spares still fill
    await asyncio.sleep(0.5)
    assert h.engine.pool.ready("demo", "messy") == 0
    task = await h.engine.spawn("messy start", requester="U1", preset="messy")
    await h.settled(task.id, {FINISHED})
    assert any("(warm)" in m.text for m in h.of(task.id, Milestone)), "a plain spare, then setup as usual"
    assert any("1 command" in m.text for m in h.of(task.id, Milestone) if m.kind == "setup_done")


async def test_restart_adopts_clean_spares_and_replaces_a_dirty_one(harness: MakeHarness) -> None:
    h = await harness(env=POOL)
    head = git(h.repo, "rev-parse", "main")
    await wait_fresh(h, head)
    kept, dirty = spares(h)
    await h.engine.stop()
    (dirty / "shared.txt").write_text("someone typed here\n")

    h2 = await harness(env=POOL, repo=h.repo)
    await wait_fresh(h2, head)
    now = spares(h2)
    assert kept in now and dirty not in now and len(now) == 2
    for path in now:
        assert_clean_checkout(path, h.repo, head)


async def test_housekeeping_leaves_spares_alone_and_pool_off_removes_them(harness: MakeHarness) -> None:
    h = await harness(env=POOL)
    await wait_fresh(h, git(h.repo, "rev-parse", "main"))
    report = await Housekeeper(h.engine).prune()
    assert not any(POOL_PREFIX in line for line in report.cleaned), report.cleaned
    assert len(spares(h)) == 2
    await h.engine.stop()

    h2 = await harness(env={"SUPERSET_POOL_SIZE": "0"}, repo=h.repo)
    for _ in range(100):
        if not spares(h2):
            break
        await asyncio.sleep(0.1)
    assert spares(h2) == []
    assert "detached" not in git(h.repo, "worktree", "list")


async def test_restart_cleans_up_a_take_and_an_agent_that_were_never_stored(harness: MakeHarness) -> None:
    presets = {"warm": agent_preset("edit", prewarm=True, setup=["touch .deps-installed"])}
    h = await harness(presets, env=POOL)
    await h.engine.pool.wait_ready("demo", key="warm", timeout=30)
    task = await h.store.create_task(Task(id=new_task_id(), repo="demo", prompt="lost in a crash", preset="warm",
                                          requester="U1"), "U1")
    await h.store.transition(task.id, PREPARING, "superset-bot", expect={QUEUED})
    # what a bot killed at the wrong moment leaves: a spare taken onto the task's branch, an agent
    # running in it, and neither written down
    taken = await h.engine.pool.take("demo", h.engine.presets["warm"], task.id, task.prompt)
    assert taken is not None and taken.prewarmed
    run_dir = h.settings.runs_dir / task.id / "1"
    run = await AgentRun.start(run_dir, [sys.executable, str(AGENTS_DIR / "sleep_forever.py")],
                               taken.worktree.path, dict(os.environ))
    assert run.is_alive()
    await h.engine.stop()

    h2 = await harness(presets, env=POOL, repo=h.repo)
    failed = await h2.engine.get(task.id)
    assert failed.state == FAILED and "restarted while preparing" in (failed.reason or "")
    for _ in range(200):  # its supervisor records the exit, then ends: allow it that moment
        if not run.is_alive():
            break
        await asyncio.sleep(0.05)
    assert not run.is_alive(), "the agent nobody followed was stopped"
    assert not taken.worktree.path.exists()
    assert git(h.repo, "for-each-ref", f"refs/heads/{taken.worktree.branch}") == ""
    assert taken.worktree.path.name not in git(h.repo, "worktree", "list")
