"""superset_bot.git.worktrees against real repos: create, commit pending work, discard."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.gitfiles import branches, commit_file, worktree_paths, write

from superset_bot.git.commands import GitError
from superset_bot.git.worktrees import BOT_AUTHOR, commit_pending, create_worktree, discard

# --------------------------------------------------------------------------- create


async def test_create_worktree(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "hello\n"})
    root = tmp_path / "data" / "worktrees" / "demo"
    wt = await create_worktree(repo, root, "t1", "Add a --help flag")
    assert wt.path == root / "t1"
    assert wt.branch == "superset/t1/add-a-help-flag"
    assert wt.base_branch == "main"
    assert wt.base_commit == git(repo, "rev-parse", "main")
    assert (wt.path / "README.md").read_text() == "hello\n"
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == wt.branch
    assert str(wt.path) in worktree_paths(repo)
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"


async def test_create_from_other_base(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "-b", "develop")
    sha = commit_file(repo, "dev.txt", "dev\n")
    git(repo, "checkout", "-q", "main")
    wt = await create_worktree(repo, tmp_path / "wt", "t2", "x", base="develop")
    assert wt.base_branch == "develop" and wt.base_commit == sha
    assert (wt.path / "dev.txt").exists()


async def test_create_unknown_base(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    with pytest.raises(GitError) as info:
        await create_worktree(repo, tmp_path / "wt", "t3", "x", base="nope")
    assert str(info.value) == f"base branch 'nope' does not exist in repo {repo}"
    assert not (tmp_path / "wt" / "t3").exists()
    assert branches(repo) == ["main"]


@pytest.mark.parametrize("base", ["-x", "--upload-pack=evil", "main branch"])
async def test_create_rejects_option_like_base(make_repo: RepoFactory, tmp_path: Path, base: str) -> None:
    repo = make_repo()
    with pytest.raises(GitError, match="not allowed"):
        await create_worktree(repo, tmp_path / "wt", "t4", "x", base=base)
    assert branches(repo) == ["main"]


async def test_create_existing_path(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    existing = tmp_path / "wt" / "t5"
    write(existing / "keep.txt", "mine\n")
    with pytest.raises(GitError, match=str(existing)):
        await create_worktree(repo, tmp_path / "wt", "t5", "x")
    assert (existing / "keep.txt").read_text() == "mine\n"
    assert branches(repo) == ["main"]


async def test_create_failing_halfway_leaves_nothing(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n", ".gitattributes": "*.txt filter=boom\n"})
    # A required smudge filter that fails makes the checkout fail after git made the branch.
    git(repo, "config", "filter.boom.smudge", "false")
    git(repo, "config", "filter.boom.required", "true")
    with pytest.raises(GitError, match="cannot create the worktree for task t6"):
        await create_worktree(repo, tmp_path / "wt", "t6", "x")
    assert not (tmp_path / "wt" / "t6").exists()
    assert branches(repo) == ["main"]
    assert worktree_paths(repo) == [str(repo)]
    assert not (repo / ".git" / "worktrees").exists() or not list((repo / ".git" / "worktrees").iterdir())


async def test_create_does_not_run_repo_hooks(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    marker = tmp_path / "hook-ran"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    hook.chmod(0o755)
    await create_worktree(repo, tmp_path / "wt", "t7", "x")
    assert not marker.exists()


async def test_create_same_task_twice(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    await create_worktree(repo, tmp_path / "wt", "t8", "x")
    with pytest.raises(GitError, match="already exists"):
        await create_worktree(repo, tmp_path / "wt", "t8", "x")


# --------------------------------------------------------------------------- commit_pending


async def test_commit_pending(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "one\n", "old.txt": "old\n", ".gitignore": "*.log\n"})
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    wt = await create_worktree(repo, tmp_path / "wt", "c1", "x")
    assert await commit_pending(wt.path, "nothing") is None
    write(wt.path / "README.md", "two\n")
    write(wt.path / "src" / "new.py", "print('hi')\n")
    write(wt.path / "debug.log", "ignored\n")
    (wt.path / "old.txt").unlink()
    sha = await commit_pending(wt.path, "agent work")
    assert sha == git(wt.path, "rev-parse", "HEAD")
    assert (
        git(wt.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s")
        == f"{BOT_AUTHOR}|{BOT_AUTHOR}|agent work"
    )
    files = git(wt.path, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["A\tsrc/new.py", "D\told.txt", "M\tREADME.md"]
    assert git(wt.path, "status", "--porcelain") == ""
    assert (wt.path / "debug.log").exists()
    assert await commit_pending(wt.path, "again") is None


async def test_commit_pending_keeps_an_agents_own_files_out_by_glob(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "one\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "c3", "x")
    write(wt.path / ".aider.chat.history.md", "# chat\n")
    write(wt.path / ".aider.tags.cache.v4" / "cache.db", "tags")
    write(wt.path / "src" / ".aider.local", "nested: only the top level is the agent's\n")
    write(wt.path / "hello.txt", "hi\n")
    await commit_pending(wt.path, "agent work", exclude_globs=[".aider*"])
    files = git(wt.path, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["hello.txt", "src/.aider.local"]
    assert (wt.path / ".aider.chat.history.md").exists()
    assert await commit_pending(wt.path, "again", exclude_globs=[".aider*"]) is None


async def test_commit_pending_custom_author(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "c2", "x")
    write(wt.path / "f.txt", "x\n")
    await commit_pending(wt.path, "msg", author="Ada Lovelace <ada@example.com>")
    assert git(wt.path, "log", "-1", "--format=%an|%ae") == "Ada Lovelace|ada@example.com"
    write(wt.path / "g.txt", "x\n")
    with pytest.raises(GitError, match="author"):
        await commit_pending(wt.path, "msg", author="nobody")


# --------------------------------------------------------------------------- discard


async def test_discard_dirty_and_locked(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n", ".gitignore": "node_modules/\n"})
    dirty = await create_worktree(repo, tmp_path / "wt", "x1", "dirty")
    locked = await create_worktree(repo, tmp_path / "wt", "x2", "locked")
    write(dirty.path / "a.txt", "changed\n")
    write(dirty.path / "untracked.txt", "u\n")
    write(dirty.path / "node_modules" / "pkg" / "index.js", "ignored\n")
    readonly = dirty.path / "ro"
    write(readonly / "f.txt", "x\n")
    readonly.chmod(0o555)
    git(repo, "worktree", "lock", "--reason", "agent running", str(locked.path))
    write(locked.path / "b.txt", "b\n")

    for wt in (dirty, locked):
        await discard(repo, wt.path, wt.branch)
        assert not wt.path.exists()
    assert branches(repo) == ["main"]
    assert worktree_paths(repo) == [str(repo)]
    # Idempotent, also for a worktree whose folder is already gone.
    await discard(repo, dirty.path, dirty.branch)
    gone = await create_worktree(repo, tmp_path / "wt", "x3", "gone")
    subprocess.run(["rm", "-rf", str(gone.path)], check=True)
    await discard(repo, gone.path, gone.branch)
    assert worktree_paths(repo) == [str(repo)]
    assert branches(repo) == ["main"]


async def test_discard_refuses_main_checkout(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    with pytest.raises(GitError, match="main checkout"):
        await discard(repo, repo, None)
    assert (repo / "README.md").exists()
    plain = tmp_path / "plain"
    write(plain / "precious.txt", "keep\n")
    with pytest.raises(GitError, match="not a git worktree"):
        await discard(repo, plain, None)
    assert (plain / "precious.txt").exists()


# --------------------------------------------------------------------------- cancellation


async def test_cancelled_create_leaves_nothing(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n", ".gitattributes": "*.txt filter=slow\n"})
    # A slow checkout (smudge filter) keeps `worktree add` busy long enough to cancel it midway.
    git(repo, "config", "filter.slow.smudge", "sleep 30; cat")
    git(repo, "config", "filter.slow.required", "true")
    root = tmp_path / "wt"
    creating = asyncio.create_task(create_worktree(repo, root, "k1", "x"))
    for _ in range(1000):
        if (root / "k1" / ".git").exists():
            break
        await asyncio.sleep(0.01)
    assert not creating.done()
    creating.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creating
    assert not (root / "k1").exists()
    assert branches(repo) == ["main"]
    assert worktree_paths(repo) == [str(repo)]
