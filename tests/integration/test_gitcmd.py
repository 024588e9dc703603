"""superset_bot.git.commands against real git: errors, lock retries, version checks, what a repository is."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import RepoFactory, git

from superset_bot.git.commands import (
    BOT_WRITE_CONFIG,
    GitError,
    git_version,
    is_git_repo,
    repo_lock,
    require_git,
    run_git,
)


async def test_run_git_returns_output(make_repo: RepoFactory) -> None:
    repo = make_repo()
    result = await run_git(repo, "rev-parse", "HEAD")
    assert result.returncode == 0
    assert result.stdout.strip() == git(repo, "rev-parse", "HEAD")


async def test_run_git_error_is_readable(make_repo: RepoFactory) -> None:
    repo = make_repo()
    with pytest.raises(GitError) as info:
        await run_git(repo, "rev-parse", "--verify", "no-such-ref")
    err = info.value
    assert err.returncode == 128
    assert err.args_ == ("rev-parse", "--verify", "no-such-ref")
    assert "no-such-ref" in str(err) and str(repo) in str(err)
    assert "fatal" in err.stderr


async def test_run_git_check_false(make_repo: RepoFactory) -> None:
    repo = make_repo()
    result = await run_git(repo, "rev-parse", "--verify", "--quiet", "nope", check=False)
    assert result.returncode == 1


async def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="does not exist"):
        await run_git(tmp_path / "nope", "status")


async def test_environment_is_predictable(make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    other = make_repo("other")
    # An inherited GIT_DIR (e.g. the bot started from a git hook) must not redirect git.
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    top = await run_git(repo, "rev-parse", "--show-toplevel")
    assert Path(top.stdout.strip()).resolve() == repo.resolve()
    env = await run_git(repo, "var", "GIT_EDITOR")
    assert env.stdout.strip() == "true"


async def test_bot_write_disables_hooks(make_repo: RepoFactory) -> None:
    repo = make_repo()
    hook = repo / ".git" / "hooks" / "pre-commit"
    marker = repo.parent / "hook-ran"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    hook.chmod(0o755)
    (repo / "f.txt").write_text("x\n")
    await run_git(repo, "add", "f.txt")
    await run_git(repo, "commit", "-q", "-m", "bot commit", bot_write=True)
    assert not marker.exists()
    assert "core.hooksPath=/dev/null" in BOT_WRITE_CONFIG
    with pytest.raises(GitError):
        (repo / "g.txt").write_text("y\n")
        await run_git(repo, "add", "g.txt")
        await run_git(repo, "commit", "-q", "-m", "user-like commit")
    assert marker.exists()


async def test_lock_is_waited_for(make_repo: RepoFactory) -> None:
    repo = make_repo()
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    (repo / "f.txt").write_text("x\n")

    async def release() -> None:
        await asyncio.sleep(0.3)
        lock.unlink()

    releaser = asyncio.create_task(release())
    await run_git(repo, "add", "f.txt")
    await releaser
    assert "f.txt" in git(repo, "diff", "--cached", "--name-only")


async def test_lock_not_retried_when_disabled(make_repo: RepoFactory) -> None:
    repo = make_repo()
    (repo / ".git" / "index.lock").write_text("")
    (repo / "f.txt").write_text("x\n")
    with pytest.raises(GitError, match="index.lock"):
        await run_git(repo, "add", "f.txt", retry_locks=False)


async def test_compare_and_swap_failure_is_not_retried(make_repo: RepoFactory) -> None:
    repo = make_repo()
    head = git(repo, "rev-parse", "HEAD")
    wrong = git(repo, "commit-tree", "HEAD^{tree}", "-m", "other")
    result = await run_git(repo, "update-ref", "refs/heads/main", wrong, wrong, check=False)
    assert result.returncode != 0
    assert git(repo, "rev-parse", "main") == head


async def test_git_version_and_require() -> None:
    version = await git_version()
    assert version >= (2, 38, 0)
    assert await require_git() == version
    with pytest.raises(GitError) as info:
        await require_git((99, 1, 0))
    text = str(info.value)
    assert text.startswith("git 99.1 or newer is needed (found ")
    assert ".".join(str(n) for n in version) in text


async def test_is_git_repo(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    (repo / "sub").mkdir()
    assert await is_git_repo(repo)
    assert not await is_git_repo(repo / "sub")
    assert not await is_git_repo(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not await is_git_repo(plain)
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert await is_git_repo(bare)


async def test_repo_lock_is_per_real_path(make_repo: RepoFactory) -> None:
    repo = make_repo()
    link = repo.parent / "link"
    os.symlink(repo, link)
    assert repo_lock(repo) is repo_lock(link)
    assert repo_lock(repo) is repo_lock(repo / ".")
    assert repo_lock(repo) is not repo_lock(make_repo("other"))
