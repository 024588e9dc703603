"""superset_bot.git.refs against real repos: which commit a branch names, and what is already on it."""

from __future__ import annotations

import pytest
from conftest import RepoFactory, git
from support.gitfiles import commit_file

from superset_bot.git.commands import GitError
from superset_bot.git.refs import branch_commit, commit_on_branch, is_ancestor, rev_parse


async def test_commit_on_branch(make_repo: RepoFactory) -> None:
    repo = make_repo()
    first = git(repo, "rev-parse", "main")
    git(repo, "branch", "side")
    second = commit_file(repo, "b.txt", "b\n")
    assert await branch_commit(repo, "main", "base branch") == second
    assert await rev_parse(repo, "HEAD") == second
    assert await is_ancestor(repo, first, second) and not await is_ancestor(repo, second, first)
    assert await commit_on_branch(repo, first, "main")
    assert not await commit_on_branch(repo, second, "side")
    with pytest.raises(GitError, match="base branch 'nope' does not exist"):
        await branch_commit(repo, "nope", "base branch")
