"""A cancel, discard or stop landing while a task's worktree is being made (engine/preparing.py).

`git worktree add`, or a take from the warm pool (update-ref, symbolic-ref, worktree move), makes a
worktree and a branch that only the stored task row ties to the task. tests/agents/git_hold.sh,
first on PATH, holds the real git at one chosen step until the test lets it go; the test acts while
the bot waits there. Afterwards nothing may be in git that no open task owns, and the task is either
reviewable with its worktree (Discard removes it) or everything it made is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import AGENTS_DIR, RepoFactory, git
from support.engineharness import Harness, MakeHarness
from support.faultbot import PRESETS, KillableBot

from superset_bot.git import naming as gitnaming
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.store import CANCELLED, CLOSED_STATES, DISCARDED, FAILED, FINISHED, REVIEWABLE_STATES, Task

PROMPT = "add a feature"
TASK_ID = "race01"
BRANCH = gitnaming.branch_name(TASK_ID, PROMPT)


@dataclass
class Hold:
    marker: Path

    @property
    def go(self) -> Path:
        return Path(f"{self.marker}.go")

    async def reached(self, timeout: float = 30.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.marker.exists():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("git never reached the step under test")
            await asyncio.sleep(0.02)
        return self.marker.read_text()

    def release(self) -> None:
        self.go.touch()

    def pid(self) -> int | None:
        return int(self.marker.read_text().split()[0]) if self.marker.exists() else None


HoldGit = Callable[[str, str, str], Hold]


@pytest.fixture
async def hold_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HoldGit]:
    """`hold_git(on, also, when)`: the bot's next git call with both words is held (see git_hold.sh)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "git").write_text(f'#!/bin/sh\nexec /bin/sh {AGENTS_DIR / "git_hold.sh"} "$@"\n')
    (shim / "git").chmod(0o755)
    real_git = shutil.which("git")
    assert real_git
    holds: list[Hold] = []

    def arm(on: str, also: str, when: str) -> Hold:
        hold = Hold(tmp_path / f"held-{len(holds)}")
        monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
        monkeypatch.setenv("REAL_GIT", real_git)
        monkeypatch.setenv("PAUSE_ON", on)
        monkeypatch.setenv("PAUSE_ALSO", also)
        monkeypatch.setenv("PAUSE_WHEN", when)
        monkeypatch.setenv("PAUSE_MARKER", str(hold.marker))
        holds.append(hold)
        return hold

    yield arm
    for hold in holds:  # no held git outlives the test
        hold.release()
        pid = hold.pid()
        if pid is not None:
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def unowned(h: Harness, tasks: list[Task]) -> list[str]:
    """Worktrees and task branches in git that no open task has stored as its own (pool spares aside)."""
    owned_paths = {os.path.realpath(t.worktree) for t in tasks if t.worktree and t.state not in CLOSED_STATES}
    owned_branches = {t.branch for t in tasks if t.branch and t.state not in CLOSED_STATES}
    found: list[str] = []
    listing = git(h.repo, "worktree", "list", "--porcelain").split("\n\n")
    for block in listing[1:]:  # the first is the main checkout
        lines = dict(line.split(" ", 1) for line in block.splitlines() if " " in line)
        path, branch = lines.get("worktree", ""), lines.get("branch", "").removeprefix("refs/heads/")
        if gitnaming.is_pool_spare(Path(path), branch or None):
            continue
        if os.path.realpath(path) not in owned_paths:
            found.append(f"worktree {path} ({branch or 'detached'})")
    for branch in git(h.repo, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/superset/").split():
        if branch not in owned_branches:
            found.append(f"branch {branch}")
    return found


def nothing_left(h: Harness) -> list[str]:
    left = [f"branch {b}" for b in git(h.repo, "for-each-ref", "--format=%(refname:lstrip=2)",
                                       "refs/heads/superset/").split()]
    listing = git(h.repo, "worktree", "list", "--porcelain").split("\n\n")
    for block in listing[1:]:
        lines = dict(line.split(" ", 1) for line in block.splitlines() if " " in line)
        if not gitnaming.is_pool_spare(Path(lines.get("worktree", "")), lines.get("branch")):
            left.append(f"worktree {lines.get('worktree')}")
    return left


# the steps of making a worktree that git_hold.sh can hold: (pool?, words, when)
STEPS = {
    "worktree add": (False, ("worktree add", "-b"), "after"),
    "pool branch created": (True, ("update-ref", f"refs/heads/{BRANCH}"), "after"),
    "pool HEAD moved": (True, ("symbolic-ref", f"refs/heads/{BRANCH}"), "after"),
    "pool folder renamed": (True, ("worktree move", "move"), "before"),
}


async def _start(harness: MakeHarness, hold_git: HoldGit, step: str) -> tuple[Harness, Hold]:
    pool, (on, also), when = STEPS[step]
    h = await harness(env={"SUPERSET_POOL_SIZE": "1" if pool else "0"})
    if pool:
        await h.engine.pool.wait_ready("demo")
    if step == "pool folder renamed":
        also = str(h.settings.worktrees_dir / "demo" / TASK_ID)
    hold = hold_git(on, also, when)
    await h.engine.spawn(PROMPT, requester="U1", task_id=TASK_ID)
    await hold.reached()
    return h, hold


@pytest.mark.parametrize("action", ["cancel", "discard"])
@pytest.mark.parametrize("step", list(STEPS))
async def test_cancel_or_discard_while_the_worktree_is_made_leaves_nothing_unowned(
    harness: MakeHarness, hold_git: HoldGit, step: str, action: str
) -> None:
    h, hold = await _start(harness, hold_git, step)
    acting = asyncio.create_task(getattr(h.engine, action)(TASK_ID, "U2"))
    await asyncio.sleep(0.3)  # the action is under way while git is held; no outcome depends on how long
    hold.release()
    task = await asyncio.wait_for(acting, 60)
    await h.engine.wait_idle()

    assert task.state == (DISCARDED if action == "discard" else CANCELLED), task
    assert unowned(h, await h.store.list_tasks()) == [], "git holds what no open task owns"
    if action == "cancel":
        # reviewable: either its worktree is stored (and there) or nothing was made
        assert task.state in REVIEWABLE_STATES
        if task.worktree:
            assert Path(task.worktree).is_dir() and task.branch
        await h.engine.discard(TASK_ID, "U2")
    assert nothing_left(h) == []
    again = await h.engine.spawn(PROMPT, requester="U1", task_id="race02")  # and the bot still works
    assert (await h.settled(again.id)).state == FINISHED


@pytest.mark.parametrize("step", ["worktree add", "pool folder renamed"])
async def test_stop_while_the_worktree_is_made_then_restart_leaves_nothing_unowned(
    harness: MakeHarness, hold_git: HoldGit, step: str
) -> None:
    h, hold = await _start(harness, hold_git, step)
    stopping = asyncio.create_task(h.engine.stop())
    await asyncio.sleep(0.3)
    hold.release()
    await asyncio.wait_for(stopping, 60)

    again = await harness(repo=h.repo, env={"SUPERSET_POOL_SIZE": "0"})  # the next start settles it
    task = await again.engine.get(TASK_ID)
    assert task.state == FAILED and "restarted while preparing" in (task.reason or ""), task
    assert unowned(again, await again.store.list_tasks()) == []
    await again.engine.discard(TASK_ID, "U2")
    assert nothing_left(again) == []


class _WriteLock:
    """Another process's SQLite write lock (a sqlite3 shell, a backup), held until released."""

    def __init__(self, db: Path) -> None:
        self.held = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(db,), daemon=True)
        self.thread.start()
        assert self.held.wait(10)

    def _run(self, db: Path) -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.held.set()
            self.done.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def release(self) -> None:
        self.done.set()
        self.thread.join(10)


async def test_cancel_while_the_new_worktree_is_being_stored_leaves_nothing_unowned(
    harness: MakeHarness, hold_git: HoldGit
) -> None:
    # git made the worktree; the bot is writing it into the task row, and that write waits for
    # another process's lock. A cancel then must not leave the worktree unrecorded.
    h, hold = await _start(harness, hold_git, "worktree add")
    lock = _WriteLock(h.settings.db_path)
    try:
        hold.release()
        deadline = asyncio.get_running_loop().time() + 30
        while not h.store.writing:  # the bot's write is waiting on the other process's lock
            assert asyncio.get_running_loop().time() < deadline, "the bot never tried to store the worktree"
            await asyncio.sleep(0.02)
        acting = asyncio.create_task(h.engine.cancel(TASK_ID, "U2"))
        await asyncio.sleep(0.3)
    finally:
        lock.release()
    task = await asyncio.wait_for(acting, 60)
    await h.engine.wait_idle()
    assert task.state == CANCELLED, task
    assert unowned(h, await h.store.list_tasks()) == []
    await h.engine.discard(TASK_ID, "U2")
    assert nothing_left(h) == []



# git_pause.sh words for the steps of a take from the warm pool (the task id is not known in advance)
POOL_STEPS = {
    "pool branch created": ("update-ref", "pool", "after"),  # its -m message names the warm pool
    "pool HEAD moved": ("symbolic-ref HEAD", "HEAD", "after"),
    "pool folder renamed": ("worktree move", "move", "after"),
}


@pytest.mark.parametrize("step", list(POOL_STEPS))
async def test_kill_9_during_a_take_from_the_warm_pool_leaves_nothing_unowned(
    step: str, killable: Callable[..., KillableBot], make_repo: RepoFactory, harness: MakeHarness
) -> None:
    repo = make_repo("demo", {"README.md": "# demo\n"})
    on, also, when = POOL_STEPS[step]
    bot = killable(repo, PAUSE_ON=on, PAUSE_ALSO=also, PAUSE_WHEN=when, SUPERSET_POOL_SIZE="1")
    bot.wait(lambda: any((repo / ".git" / "worktrees").glob("*/superset-pool.json")), "a warm worktree is ready")
    bot.send("spawn add a feature")
    assert on.split()[0] in bot.wait_paused()
    bot.kill()
    [row] = bot.tasks()
    assert row["state"] == "preparing" and row["worktree"] is None, row

    h = await harness(PRESETS, repo=repo)  # the restart settles what the killed take left
    task = await h.engine.get(str(row["id"]))
    assert task.state == FAILED and "restarted while preparing" in (task.reason or ""), task
    keeper = Housekeeper(h.engine)
    await keeper.reconcile()
    await keeper.prune()
    assert unowned(h, await h.store.list_tasks()) == []
    assert nothing_left(h) == []
