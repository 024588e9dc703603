"""superset_bot.git.inventory against real repos: the bot's worktrees, orphans, maintenance."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import RepoFactory, git
from support.gitfiles import worktree_paths, write

from superset_bot.git.inventory import find_orphans, git_maintenance, list_worktrees
from superset_bot.git.worktrees import create_worktree

# --------------------------------------------------------------------------- list / orphans / maintenance


async def test_list_worktrees(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    root = tmp_path / "wt"
    started = time.time() - 2
    a = await create_worktree(repo, root, "aa1", "first")
    b = await create_worktree(repo, root, "bb2", "second")
    git(repo, "worktree", "add", "-q", "-b", "elsewhere", str(tmp_path / "outside"))
    write(a.path / "big.bin", b"x" * 100_000)
    git(repo, "worktree", "lock", str(b.path))

    infos = {i.task_id: i for i in await list_worktrees(repo, root)}
    assert set(infos) == {"aa1", "bb2"}
    assert infos["aa1"].branch == a.branch and infos["aa1"].head == a.base_commit
    assert infos["aa1"].size_bytes >= 100_000 > infos["bb2"].size_bytes > 0
    assert infos["aa1"].last_activity >= started
    assert infos["bb2"].locked and not infos["aa1"].locked
    assert not infos["aa1"].prunable

    subprocess.run(["rm", "-rf", str(a.path)], check=True)
    infos = {i.task_id: i for i in await list_worktrees(repo, root)}
    assert infos["aa1"].prunable and infos["aa1"].size_bytes == 0


async def test_find_orphans(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    root = tmp_path / "wt"
    alive = await create_worktree(repo, root, "alive1", "alive")
    lost = await create_worktree(repo, root, "lost2", "lost")
    stray = await create_worktree(repo, root, "stray3", "stray")
    git(repo, "branch", "superset/old4-leftover")
    git(repo, "branch", "feature/not-ours")
    junk = root / "junk5"
    write(junk / "file.txt", "x\n")
    subprocess.run(["rm", "-rf", str(lost.path)], check=True)

    orphans = await find_orphans(repo, root, {"alive1": alive.path, "lost2": lost.path})
    assert sorted(map(str, orphans.worktrees)) == sorted([str(stray.path), str(junk)])
    assert sorted(orphans.branches) == ["superset/old4-leftover", stray.branch]
    assert orphans.missing == ["lost2"]


async def test_git_maintenance_prunes(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "m1", "x")
    subprocess.run(["rm", "-rf", str(wt.path)], check=True)
    assert str(wt.path) in worktree_paths(repo)
    await git_maintenance(repo)
    assert worktree_paths(repo) == [str(repo)]
