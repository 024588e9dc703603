"""superset_bot.git.refs against real repos: ref arguments, which commit a ref or branch names, the default
branch, and what is already on a branch."""

from __future__ import annotations

import pytest
from conftest import RepoFactory, git
from support.gitfiles import commit_file

from superset_bot.git.commands import GitError
from superset_bot.git.refs import (
    branch_commit,
    branch_exists,
    commit_on_branch,
    default_branch,
    is_ancestor,
    resolve_commit,
    rev_parse,
)


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


async def test_default_branch(make_repo: RepoFactory) -> None:
    repo = make_repo(branch="trunk")
    assert await default_branch(repo) == "trunk"
    git(repo, "branch", "main")
    git(repo, "checkout", "-q", "--detach")
    assert await default_branch(repo) == "main"
    git(repo, "branch", "develop")
    git(repo, "update-ref", "refs/remotes/origin/develop", "HEAD")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/develop")
    assert await default_branch(repo) == "develop"


async def test_default_branch_none(make_repo: RepoFactory) -> None:
    repo = make_repo(branch="trunk")
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(GitError, match="default branch"):
        await default_branch(repo)


async def test_resolve_commit(make_repo: RepoFactory) -> None:
    repo = make_repo()
    head = git(repo, "rev-parse", "HEAD")
    assert await resolve_commit(repo, "main") == head
    assert await resolve_commit(repo, head[:10]) == head
    with pytest.raises(GitError) as info:
        await resolve_commit(repo, "nope")
    assert str(info.value) == f"base branch 'nope' does not exist in repo {repo}"


@pytest.mark.parametrize(
    "ref", ["-x", "--upload-pack=evil", "--output=/tmp/x", "a b", "a\tb", "a\nb", "x\x7f", ""]
)
async def test_resolve_commit_rejects_option_like_refs(make_repo: RepoFactory, ref: str) -> None:
    repo = make_repo()
    with pytest.raises(GitError):
        await resolve_commit(repo, ref)
    with pytest.raises(GitError):
        await branch_exists(repo, ref)
    with pytest.raises(GitError):
        await branch_commit(repo, ref, "branch")


async def test_branch_exists(make_repo: RepoFactory) -> None:
    repo = make_repo()
    git(repo, "tag", "v1")
    assert await branch_exists(repo, "main")
    assert not await branch_exists(repo, "v1")
    assert not await branch_exists(repo, "nope")
