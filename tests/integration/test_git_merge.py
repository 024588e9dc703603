"""superset_bot.git.merge against real repos: previews, strategies, races, the base's own checkout,
and updating a task from its base."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.gitfiles import commit_file, write

from superset_bot.git.checkout import BaseCheckoutDirty
from superset_bot.git.commands import GitError
from superset_bot.git.merge import MergeConflict, NothingToMerge, merge, preview_merge, update_from_base
from superset_bot.git.worktrees import BOT_AUTHOR, Worktree, commit_pending, create_worktree


def parents(repo: Path, rev: str) -> list[str]:
    return git(repo, "log", "-1", "--format=%P", rev).split()


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=repo).returncode == 0


def worktree_count(repo: Path) -> int:
    return git(repo, "worktree", "list", "--porcelain").count("worktree ")


async def task(repo: Path, tmp_path: Path, task_id: str, files: dict[str, str]) -> Worktree:
    wt = await create_worktree(repo, tmp_path / "wt", task_id, f"task {task_id}")
    for rel, content in files.items():
        commit_file(wt.path, rel, content, f"{task_id}: {rel}")
    return wt


# --------------------------------------------------------------------------- preview


async def test_preview_clean_and_conflicting(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "one\n", "other.txt": "o\n"})
    clean = await task(repo, tmp_path, "p1", {"new.txt": "n\n"})
    clash = await task(repo, tmp_path, "p2", {"shared.txt": "task\n", "other.txt": "t\n"})
    commit_file(repo, "shared.txt", "base\n")
    commit_file(repo, "other.txt", "b\n")
    index = repo / ".git" / "index"
    before = (index.stat().st_mtime_ns, git(repo, "rev-parse", "HEAD"))

    ok = await preview_merge(repo, clean.branch, "main")
    assert ok.clean and ok.conflicts == [] and ok.tree
    assert ok.base_commit == git(repo, "rev-parse", "main")
    assert ok.head_commit == git(repo, "rev-parse", clean.branch)
    bad = await preview_merge(repo, clash.branch, "main")
    assert not bad.clean and bad.tree is None
    assert sorted(bad.conflicts) == ["other.txt", "shared.txt"]
    assert (index.stat().st_mtime_ns, git(repo, "rev-parse", "HEAD")) == before
    assert git(repo, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- strategies


async def test_merge_commit_updates_clean_checkout(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "hi\n"})
    wt = await task(repo, tmp_path, "m1", {"feature.txt": "feature\n"})
    outside = commit_file(repo, "base.txt", "base\n")
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)

    result = await merge(repo, wt.branch, "main")
    assert result.strategy == "merge" and result.old_base_commit == outside
    assert result.updated_checkout == repo
    new = git(repo, "rev-parse", "main")
    assert result.new_commit == new
    assert parents(repo, new) == [outside, git(repo, "rev-parse", wt.branch)]
    assert (
        git(repo, "log", "-1", "--format=%an <%ae>|%s", new)
        == f"{BOT_AUTHOR}|Merge branch '{wt.branch}' into main"
    )
    assert (repo / "feature.txt").read_text() == "feature\n"
    assert git(repo, "status", "--porcelain") == ""


async def test_merge_when_base_not_checked_out(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "-b", "elsewhere")
    wt = await task(repo, tmp_path, "m2", {"feature.txt": "f\n"})
    result = await merge(repo, wt.branch, "main", message="Custom message")
    assert result.updated_checkout is None
    assert git(repo, "log", "-1", "--format=%s", "main") == "Custom message"
    assert not (repo / "feature.txt").exists()
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "elsewhere"


async def test_squash(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await task(repo, tmp_path, "s1", {"a.txt": "a\n", "b.txt": "b\n"})
    old = commit_file(repo, "base.txt", "base\n")
    result = await merge(repo, wt.branch, "main", strategy="squash")
    new = result.new_commit
    assert parents(repo, new) == [old]
    assert git(repo, "diff", "--name-only", old, new).splitlines() == ["a.txt", "b.txt"]
    message = git(repo, "log", "-1", "--format=%B", new)
    assert message.startswith(f"Squash merge branch '{wt.branch}' into main")
    assert "* s1: a.txt" in message and "* s1: b.txt" in message
    assert (repo / "a.txt").exists() and git(repo, "status", "--porcelain") == ""


async def test_rebase_fast_forward(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await task(repo, tmp_path, "r1", {"a.txt": "a\n"})
    result = await merge(repo, wt.branch, "main", strategy="rebase")
    assert result.new_commit == git(repo, "rev-parse", wt.branch) == git(repo, "rev-parse", "main")
    assert (repo / "a.txt").exists()


async def test_rebase_replays_commits_keeping_authors(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "r2", "rebase me")
    commit_file(wt.path, "a.txt", "a\n", "first change", author="Ada <ada@example.com>")
    commit_file(wt.path, "b.txt", "b\n", "second change", author="Grace <grace@example.com>")
    task_head = git(repo, "rev-parse", wt.branch)
    old = commit_file(repo, "base.txt", "base\n")
    before = worktree_count(repo)
    temps = set(Path(tempfile.gettempdir()).glob("superset-rebase-*"))

    result = await merge(repo, wt.branch, "main", strategy="rebase")
    new = result.new_commit
    assert git(repo, "log", "--format=%an|%s", f"{old}..{new}").splitlines() == [
        "Grace|second change",
        "Ada|first change",
    ]
    assert git(repo, "log", "--format=%cn", f"{old}..{new}").splitlines() == ["superset-bot"] * 2
    assert len(parents(repo, new)) == 1
    assert parents(repo, f"{new}~1") == [old]
    assert git(repo, "rev-parse", wt.branch) == task_head  # the task's branch and worktree untouched
    assert git(wt.path, "status", "--porcelain") == ""
    assert worktree_count(repo) == before
    leftovers = set(Path(tempfile.gettempdir()).glob("superset-rebase-*")) - temps
    assert not [
        p for p in leftovers if str(repo) in ((p / ".git").read_text() if (p / ".git").is_file() else "")
    ]
    assert (repo / "a.txt").exists() and (repo / "b.txt").exists()


async def test_rebase_conflict_leaves_everything(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "1\n2\n3\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "r3", "x")
    # Each commit conflicts with base on its own though the net diff might not.
    commit_file(wt.path, "shared.txt", "1\nTASK\n3\n", "c1")
    commit_file(wt.path, "other.txt", "o\n", "c2")
    old = commit_file(repo, "shared.txt", "1\nBASE\n3\n")
    before = worktree_count(repo)
    with pytest.raises(MergeConflict) as info:
        await merge(repo, wt.branch, "main", strategy="rebase")
    assert info.value.files == ["shared.txt"]
    assert git(repo, "rev-parse", "main") == old
    assert worktree_count(repo) == before


# --------------------------------------------------------------------------- refusals


async def test_conflicting_merge_refused(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "one\n", "ok.txt": "ok\n"})
    wt = await task(repo, tmp_path, "c1", {"shared.txt": "task\n", "fine.txt": "f\n"})
    old = commit_file(repo, "shared.txt", "base\n")
    for strategy in ("merge", "squash", "rebase"):
        with pytest.raises(MergeConflict) as info:
            await merge(repo, wt.branch, "main", strategy=strategy)
        assert info.value.files == ["shared.txt"]
        assert "shared.txt" in str(info.value)
        assert git(repo, "rev-parse", "main") == old
    assert (repo / "shared.txt").read_text() == "base\n"
    assert git(repo, "status", "--porcelain") == ""


async def test_dirty_base_checkout_refused(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "hi\n"})
    wt = await task(repo, tmp_path, "d1", {"feature.txt": "f\n"})
    old = git(repo, "rev-parse", "main")
    write(repo / "README.md", "my local edit\n")
    with pytest.raises(BaseCheckoutDirty) as info:
        await merge(repo, wt.branch, "main")
    err = info.value
    assert err.checkout == repo and err.files == ["README.md"]
    assert str(repo) in str(err) and "README.md" in str(err) and "commit or stash" in str(err)
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "README.md").read_text() == "my local edit\n"
    assert not (repo / "feature.txt").exists()


async def test_untracked_files_in_base_checkout(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await task(repo, tmp_path, "d2", {"feature.txt": "f\n"})
    write(repo / "notes.txt", "mine\n")  # harmless: the merge does not touch it
    result = await merge(repo, wt.branch, "main")
    assert result.updated_checkout == repo
    assert (repo / "notes.txt").read_text() == "mine\n" and (repo / "feature.txt").exists()

    other = await task(repo, tmp_path, "d3", {"collide.txt": "theirs\n"})
    write(repo / "collide.txt", "mine\n")  # would be overwritten
    old = git(repo, "rev-parse", "main")
    with pytest.raises(BaseCheckoutDirty, match="collide.txt"):
        await merge(repo, other.branch, "main")
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "collide.txt").read_text() == "mine\n"


async def test_checkout_update_failure_moves_base_back(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "hi\n"})
    wt = await task(repo, tmp_path, "f1", {"README.md": "from task\n"})
    old = git(repo, "rev-parse", "main")

    async def edit_after_check(_old: str, _new: str) -> None:
        write(repo / "README.md", "edited at the last moment\n")

    with pytest.raises(GitError, match="put back"):
        await merge(repo, wt.branch, "main", on_ready=edit_after_check)
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "README.md").read_text() == "edited at the last moment\n"


@pytest.mark.parametrize("base", ["-x", "--upload-pack=evil", "a b"])
async def test_option_like_base_rejected(make_repo: RepoFactory, tmp_path: Path, base: str) -> None:
    repo = make_repo()
    wt = await task(repo, tmp_path, "o1", {"f.txt": "f\n"})
    with pytest.raises(GitError, match="not allowed"):
        await merge(repo, wt.branch, base)


async def test_unknown_base_and_strategy(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await task(repo, tmp_path, "o2", {"f.txt": "f\n"})
    with pytest.raises(GitError) as info:
        await merge(repo, wt.branch, "nope")
    assert str(info.value) == f"base branch 'nope' does not exist in repo {repo}"
    with pytest.raises(GitError, match="unknown merge strategy 'octopus'"):
        await merge(repo, wt.branch, "main", strategy="octopus")


async def test_nothing_to_merge(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "n1", "x")
    for strategy in ("merge", "squash", "rebase"):
        with pytest.raises(NothingToMerge):
            await merge(repo, wt.branch, "main", strategy=strategy)


# --------------------------------------------------------------------------- races


async def test_two_merges_racing(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    one = await task(repo, tmp_path, "race1", {"one.txt": "1\n"})
    two = await task(repo, tmp_path, "race2", {"two.txt": "2\n"})
    first, second = await asyncio.gather(merge(repo, one.branch, "main"), merge(repo, two.branch, "main"))
    head = git(repo, "rev-parse", "main")
    assert head in (first.new_commit, second.new_commit)
    for wt in (one, two):
        assert is_ancestor(repo, git(repo, "rev-parse", wt.branch), head)
    assert (repo / "one.txt").exists() and (repo / "two.txt").exists()
    assert git(repo, "status", "--porcelain") == ""


async def test_outside_commit_between_check_and_update(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await task(repo, tmp_path, "cas1", {"task.txt": "t\n"})
    seen: list[str] = []

    async def someone_commits(old: str, _new: str) -> None:
        seen.append(old)
        if len(seen) == 1:  # the base moves after the check, before the compare-and-swap
            await asyncio.to_thread(commit_file, repo, "outside.txt", "o\n", "outside commit")

    result = await merge(repo, wt.branch, "main", on_ready=someone_commits)
    outside = git(repo, "log", "-1", "--format=%H", "--grep=outside commit", "main")
    assert len(seen) == 2 and seen[1] == outside != seen[0]
    assert result.old_base_commit == outside
    assert parents(repo, "main") == [outside, git(repo, "rev-parse", wt.branch)]
    assert (repo / "outside.txt").exists() and (repo / "task.txt").exists()
    assert git(repo, "status", "--porcelain") == ""


def plumbing_commits(repo: Path, count: int) -> list[str]:
    """Commit to main the way another tool would, by compare-and-swap, without any checkout."""
    made: list[str] = []
    env = {**os.environ, "GIT_INDEX_FILE": str(repo.parent / "outside-index")}
    for i in range(count):
        while True:
            old = git(repo, "rev-parse", "main")
            subprocess.run(["git", "read-tree", old], cwd=repo, env=env, check=True)
            blob = subprocess.run(
                ["git", "hash-object", "-w", "--stdin"],
                cwd=repo,
                input=f"{i}\n",
                text=True,
                capture_output=True,
                check=True,
            ).stdout.strip()
            subprocess.run(
                ["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},outside/{i}.txt"],
                cwd=repo,
                env=env,
                check=True,
            )
            tree = subprocess.run(
                ["git", "write-tree"], cwd=repo, env=env, capture_output=True, text=True, check=True
            )
            new = git(repo, "commit-tree", tree.stdout.strip(), "-p", old, "-m", f"outside {i}")
            moved = subprocess.run(
                ["git", "update-ref", "refs/heads/main", new, old], cwd=repo, capture_output=True
            )
            if moved.returncode == 0:
                made.append(new)
                break
    return made


async def test_merges_racing_outside_commits(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "--detach")  # nobody has main checked out: only refs race
    tasks = [await task(repo, tmp_path, f"busy{i}", {f"task{i}.txt": f"{i}\n"}) for i in range(3)]

    async def merges() -> list[str]:
        done: list[str] = []
        for wt in tasks:
            while True:  # like a person clicking Merge again if the base never held still
                try:
                    done.append((await merge(repo, wt.branch, "main")).new_commit)
                    break
                except GitError as exc:
                    assert "kept moving" in str(exc)
        return done

    outside, merged = await asyncio.gather(asyncio.to_thread(plumbing_commits, repo, 15), merges())
    head = git(repo, "rev-parse", "main")
    for sha in outside + merged:
        assert is_ancestor(repo, sha, head)
    files = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {f"outside/{i}.txt" for i in range(15)} <= set(files)
    assert {f"task{i}.txt" for i in range(3)} <= set(files)


# --------------------------------------------------------------------------- update_from_base


async def test_update_from_base_clean(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "u1", "x")
    commit_file(wt.path, "task.txt", "task\n")
    commit_file(repo, "base.txt", "base\n")
    assert await update_from_base(wt.path, "main") == []
    assert (wt.path / "base.txt").exists()
    assert (
        git(wt.path, "log", "-1", "--format=%an <%ae>|%s")
        == f"{BOT_AUTHOR}|Merge branch 'main' into {wt.branch}"
    )
    assert git(repo, "rev-parse", "main") in git(wt.path, "log", "-1", "--format=%P")


async def test_update_from_base_conflict_left_for_agent(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "one\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "u2", "x")
    commit_file(wt.path, "shared.txt", "task\n")
    commit_file(repo, "shared.txt", "base\n")
    assert await update_from_base(wt.path, "main") == ["shared.txt"]
    assert "<<<<<<<" in (wt.path / "shared.txt").read_text()
    write(wt.path / "shared.txt", "resolved\n")
    sha = await commit_pending(wt.path, "resolve")
    assert sha is not None
    assert len(git(wt.path, "log", "-1", "--format=%P").split()) == 2


async def test_update_from_base_refuses_to_overwrite(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "one\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "u3", "x")
    commit_file(repo, "shared.txt", "base\n")
    write(wt.path / "shared.txt", "uncommitted\n")
    with pytest.raises(GitError, match="could not merge 'main'"):
        await update_from_base(wt.path, "main")
    assert (wt.path / "shared.txt").read_text() == "uncommitted\n"
