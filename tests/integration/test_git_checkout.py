"""superset_bot.git.checkout against real repos: the base's checkout follows a ref that moved without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.gitfiles import write

from superset_bot.git.checkout import base_checkout, follow_checkout
from superset_bot.git.commands import GitError


def move_ref_behind_checkout(repo: Path, rel: str, content: str) -> tuple[str, str]:
    """Commit `rel` onto main with plumbing only, as a merge killed before the checkout update leaves it."""
    old = git(repo, "rev-parse", "main")
    other = repo.parent / "other"
    git(repo, "worktree", "add", "-q", "--detach", str(other), old)
    write(other / rel, content)
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "moved")
    new = git(other, "rev-parse", "HEAD")
    git(repo, "worktree", "remove", "--force", str(other))
    git(repo, "update-ref", "refs/heads/main", new, old)
    return old, new


async def test_follow_checkout_brings_a_stale_checkout_along(make_repo: RepoFactory) -> None:
    repo = make_repo()
    old, new = move_ref_behind_checkout(repo, "merged.txt", "merged\n")
    assert git(repo, "status", "--porcelain") == "D  merged.txt"  # the merge looks like a staged revert
    assert await base_checkout(repo, "main") == repo
    assert await follow_checkout(repo, "main", old, new) == repo
    assert (repo / "merged.txt").read_text() == "merged\n"
    assert git(repo, "status", "--porcelain") == ""
    assert await follow_checkout(repo, "main", old, new) is None  # nothing left to do


async def test_follow_checkout_leaves_other_states_alone(make_repo: RepoFactory) -> None:
    repo = make_repo()
    assert await base_checkout(repo, "elsewhere") is None
    assert await follow_checkout(repo, "elsewhere", "a" * 40, "b" * 40) is None
    old, new = move_ref_behind_checkout(repo, "merged.txt", "merged\n")
    assert await follow_checkout(repo, "main", new, old) is None  # HEAD is not at the "new" commit
    assert not (repo / "merged.txt").exists()
    with pytest.raises(GitError, match="not allowed"):
        await follow_checkout(repo, "-main", old, new)
