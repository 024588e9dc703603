"""Faults the bot must survive without losing work: kill -9 mid-merge and mid-create,
a locked database, a full disk, and an agent whose processes will not die.

Everything is real: the bot runs as a separate process where it must be killed, and a `git` shim
first on its PATH (tests/agents/git_pause.sh) holds the real git at the exact step under test, so
the kill lands there every time, no timing luck. Repo hooks cannot do this: the bot runs its own
writes with core.hooksPath=/dev/null, so post-checkout never fires for its `worktree add`, and
merge() runs no teardown before the base ref moves. SQLite locks, tmpfs and signals are the kernel's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import AGENTS_DIR, RepoFactory, git
from support.engineharness import MakeHarness, agent_preset
from support.env import bot_env
from support.faultbot import PRESETS, KillableBot

from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.store import (
    CANCELLED,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    PREPARING,
    RUNNING,
    Store,
    StoreBusy,
    Task,
)


def preset_running(script: str, **env: str) -> dict[str, object]:
    return {"description": f"test agent {script}", "agent": {"command": [sys.executable, str(AGENTS_DIR / script),
                                                                         "{prompt}"]}, "env": env}


def alive(pid: int) -> bool:
    """A process that still runs (a zombie has ended; pid 1 of a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


async def wait_until(check, timeout: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- 5. cancel ends every process


async def test_cancel_ends_every_process_of_a_forking_agent_that_ignores_sigterm(
    harness: MakeHarness, tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids"
    h = await harness({"tree": preset_running("fork_tree.py", PIDS_FILE=str(pids_file))})
    task = await h.engine.spawn("start a process tree", requester="U1")
    await h.engine.wait_for(task.id, {RUNNING})

    def recorded() -> list[int]:
        return [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []

    await wait_until(lambda: len(recorded()) == 4, what="the agent's four processes")
    pids = recorded()
    assert all(alive(pid) for pid in pids)

    cancelled = await h.engine.cancel(task.id, "U2")

    assert cancelled.state == CANCELLED, cancelled
    survivors = [pid for pid in pids if alive(pid)]
    for pid in survivors:  # do not leave them behind whatever the outcome
        os.kill(pid, 9)
    assert survivors == [], f"processes of task {task.id} outlived the cancel: {survivors} of {pids}"


# ----------------------------------------------------------------------------- 3. SQLite busy

LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print(time.time(), flush=True)
"""


def hold_write_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes the database's write lock and keeps it for `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


async def test_a_database_locked_by_another_process_delays_transitions_but_loses_none(harness: MakeHarness) -> None:
    h = await harness({"edit": agent_preset("edit")})
    first = await h.engine.spawn("first task", requester="U1")
    holder = await asyncio.to_thread(hold_write_lock, h.settings.db_path, 2.5)
    try:
        # spawned while the lock is held: creating it waits for the lock instead of failing
        second = await h.engine.spawn("second task", requester="U1")
        spawned_at = time.time()
    finally:
        released, _ = await asyncio.to_thread(holder.communicate, None, 30)
    assert holder.returncode == 0
    assert spawned_at >= float(released), "the spawn waited for the lock, then went on"
    for task in (first, second):
        done = await h.settled(task.id)
        assert done.state == FINISHED, done
        stored = [e.action for e in await h.store.events(task.id) if e.action in
                  {"queued", "preparing", "running", "finished", "created"}]
        assert stored == ["created", "preparing", "running", "finished"], stored
        assert h.states(task.id) == ["queued", "preparing", "running", "finished"]
        assert done.review, "the review was stored too"


async def test_a_database_locked_for_too_long_fails_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    store = await Store.open(db, busy_timeout=0.5)
    try:
        holder = await asyncio.to_thread(hold_write_lock, db, 3)
        try:
            with pytest.raises(StoreBusy, match=r"locked by another process for 0.5s, so nothing was saved"):
                await store.create_task(Task(id="busy1", repo="demo", prompt="p", preset="edit"), "U1")
            assert await store.get_task("busy1") is None, "reads go on while another process writes"
        finally:
            await asyncio.to_thread(holder.wait, 30)
        # once the lock is gone the same store works again
        created = await store.create_task(Task(id="busy1", repo="demo", prompt="p", preset="edit"), "U1")
        assert (await store.get_task("busy1")) == created
    finally:
        await store.close()


# ----------------------------------------------------------------------------- the bot as a process to kill
# (KillableBot and its `killable` fixture are in tests/support/faultbot.py)


def finished_task(bot: KillableBot) -> dict[str, object]:
    bot.send("spawn add a feature")
    bot.wait(lambda: [t["state"] for t in bot.tasks()] == [FINISHED] and bool(bot.tasks()[0]["review"]),
             "the task finished with a review")
    return bot.tasks()[0]


# ----------------------------------------------------------------------------- 1. kill -9 during a merge


@pytest.mark.parametrize("when", ["before", "after"])
async def test_kill_9_during_a_merge_moves_the_base_fully_or_not_at_all(
    when: str, killable: Callable[..., KillableBot], make_repo: RepoFactory, harness: MakeHarness
) -> None:
    repo = make_repo("demo", {"README.md": "# demo\n"})
    # git_pause.sh holds the bot's `git update-ref ... refs/heads/main NEW OLD`, the one step that
    # moves the base: "before" it runs (merge commit made and recorded, ref not moved), or "after"
    # (ref moved, the bot not yet told, so `merged` is not stored).
    bot = killable(repo, PAUSE_ON="update-ref", PAUSE_ALSO="refs/heads/main", PAUSE_WHEN=when)
    task = finished_task(bot)
    base_before = git(repo, "rev-parse", "main")
    branch_head = git(repo, "rev-parse", str(task["branch"]))
    bot.send(f"merge {task['id']}")
    assert "update-ref" in bot.wait_paused()
    bot.kill()

    [row] = bot.tasks()
    assert row["state"] == MERGING and row["merge_commit"], "the claim and the commit to be were stored first"
    base_now = git(repo, "rev-parse", "main")
    if when == "before":
        assert base_now == base_before, "the base moved although update-ref never ran"
    else:
        assert base_now == row["merge_commit"], "the base is exactly the merge commit, not something half-done"
        assert git(repo, "rev-parse", "main^1", "main^2").split() == [base_before, branch_head]

    h = await harness(PRESETS, repo=repo)  # the restarted bot settles the claim from git
    settled = await h.engine.get(str(task["id"]))
    assert settled.state != MERGING
    if when == "before":
        assert settled.state == FINISHED and settled.merge_commit is None, settled
        assert settled.worktree and Path(settled.worktree).is_dir(), "the work is still there to review"
        merged = await h.engine.merge(settled.id, "U2")  # Merge works again, and merges once
        assert merged.state == MERGED
        assert git(repo, "rev-parse", "main^1") == base_before
    else:
        assert settled.state == MERGED and settled.merge_commit == base_now, settled
        assert settled.closed_by == "console", "the merge is credited to whoever asked for it"
        merged = settled
    assert git(repo, "show", "main:src/feature.py").startswith("# add a feature")
    assert git(repo, "status", "--porcelain") == "", "the base checkout follows the merged branch"
    assert (repo / "src" / "feature.py").is_file()
    assert not Path(str(task["worktree"])).exists()
    assert git(repo, "for-each-ref", "refs/heads/superset/") == ""


# ----------------------------------------------------------------------------- 2. kill -9 during worktree creation


async def test_kill_9_during_worktree_creation_leaves_no_orphan(
    killable: Callable[..., KillableBot], make_repo: RepoFactory, harness: MakeHarness, tmp_path: Path
) -> None:
    repo = make_repo("demo", {"README.md": "# demo\n"})
    # git_pause.sh lets `git worktree add -b superset/<id>-... PATH BASE` finish, then holds: the
    # branch and the worktree exist, but the bot has not stored them (the worst moment to die).
    bot = killable(repo, PAUSE_ON="worktree add", PAUSE_ALSO="-b", PAUSE_WHEN="after")
    bot.send("spawn add a feature")
    bot.wait_paused()
    bot.kill()
    [row] = bot.tasks()
    assert row["state"] == PREPARING and row["worktree"] is None, row
    worktree = tmp_path / "data" / "worktrees" / "demo" / str(row["id"])
    assert worktree.is_dir() and git(repo, "for-each-ref", "refs/heads/superset/"), "git did its part"

    h = await harness(PRESETS, repo=repo)
    task = await h.engine.get(str(row["id"]))
    assert task.state == FAILED and "restarted while preparing the worktree" in (task.reason or ""), task
    housekeeper = Housekeeper(h.engine)
    await housekeeper.reconcile()
    await housekeeper.prune()

    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1, git(repo, "worktree", "list")
    assert not worktree.exists()
    assert git(repo, "for-each-ref", "refs/heads/superset/") == ""
    # and the bot still works: the same prompt spawns and finishes normally
    again = await h.engine.spawn("add a feature", requester="U1")
    assert (await h.settled(again.id)).state == FINISHED


# ----------------------------------------------------------------------------- 4. disk full during an agent run


def _mount_prefix(probe_dir: Path) -> list[str]:
    """How to run a command in a private mount namespace that may mount a tmpfs, or skip."""
    prefixes = [["unshare", "-m", "--propagation", "private"]] if os.geteuid() == 0 else []
    prefixes.append(["unshare", "-rm"])  # an unprivileged user namespace, where CI allows them
    if shutil.which("unshare"):
        for prefix in prefixes:
            probe = subprocess.run([*prefix, "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs '{probe_dir}'"],
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                return prefix
    pytest.skip("cannot mount a small tmpfs here: not root, and unprivileged user namespaces "
                "(`unshare -rm`) are not allowed, so a full disk cannot be simulated")


def run_bot_on_small_disk(tmp_path: Path, repos: dict[str, Path], small: Path, commands: list[str],
                          presets: dict[str, dict[str, object]]) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """The console bot in its own mount namespace, with a 2 MiB tmpfs at `small` (gone when it exits)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    prefix = _mount_prefix(probe)
    presets_dir = tmp_path / "presets"
    presets_dir.mkdir()
    for name, body in presets.items():
        (presets_dir / f"{name}.json").write_text(json.dumps(body))
    small.mkdir(parents=True)
    env = bot_env(tmp_path, repos, presets=presets_dir, SUPERSET_DEFAULT_PRESET="edit", SUPERSET_POOL_SIZE="0")
    script = f'mount -t tmpfs -o size=2m tmpfs "{small}" && exec "{sys.executable}" -m superset_bot.cli console'
    done = subprocess.run([*prefix, "sh", "-c", script], input="\n".join(commands) + "\n", capture_output=True,
                          text=True, env=env, cwd=Path(__file__).parents[2], timeout=90)
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "superset.sqlite3")) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY created_at")]
    return done, rows


def test_disk_full_in_a_worktree_fails_that_task_clearly_and_nothing_else(
    tmp_path: Path, make_repo: RepoFactory
) -> None:
    repos = {"demo": make_repo("demo"), "other": make_repo("other")}
    done, rows = run_bot_on_small_disk(
        tmp_path, repos, tmp_path / "data" / "worktrees" / "demo",
        ["spawn --repo demo --preset fill fill the disk", "spawn --repo other add a feature"],
        {"edit": agent_preset("edit"), "fill": preset_running("fill_disk.py", FILL="worktree")},
    )
    assert done.returncode == 0, done.stderr  # no crash: the console settled both tasks and exited
    assert "Traceback" not in done.stderr, done.stderr
    by_repo = {r["repo"]: r for r in rows}
    full, other = by_repo["demo"], by_repo["other"]
    assert full["state"] == FAILED, full
    assert "disk" in str(full["reason"]) and "full" in str(full["reason"]), full["reason"]
    assert other["state"] == FINISHED and other["review"], other


def test_a_run_log_on_a_full_disk_loses_output_but_not_the_outcome(tmp_path: Path, make_repo: RepoFactory) -> None:
    done, rows = run_bot_on_small_disk(
        tmp_path, {"demo": make_repo("demo")}, tmp_path / "data" / "runs",
        ["spawn --preset flood print a lot"],
        {"edit": agent_preset("edit"), "flood": preset_running("fill_disk.py", FILL="output", FILL_MIB="3")},
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [row] = rows
    # the agent exited 0: that is recorded, not "lost", and the reason says output went missing
    assert row["state"] == FINISHED and row["exit_code"] == 0, (row["state"], row["reason"])
    assert "log" in str(row["reason"]) and "No space left on device" in str(row["reason"]), row["reason"]
