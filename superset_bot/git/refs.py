"""Refs: checking a ref argument before git sees it, the commit a ref or branch names, whether a
branch exists, a repository's default branch, and whether one commit is already part of another's
history.
"""

from __future__ import annotations

import re
from pathlib import Path

from superset_bot.git.commands import GitError, run_git

_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f]")


def check_ref_arg(ref: str, what: str = "ref") -> str:
    """Reject names git could read as an option, or that hide whitespace/control characters."""
    if not ref:
        raise GitError(f"{what} name is empty")
    if ref.startswith("-"):
        raise GitError(f"{what} '{ref}' is not allowed: names starting with '-' look like git options")
    if _BAD_REF_CHARS.search(ref):
        raise GitError(f"{what} {ref!r} is not allowed: it contains whitespace or control characters")
    return ref


async def rev_parse(cwd: Path, ref: str) -> str:
    """The object `ref` names in cwd (a commit, or a tree for `X^{tree}`); GitError when none."""
    return (await run_git(cwd, "rev-parse", "--verify", "--quiet", ref)).stdout.strip()


async def _commit(repo: Path, name: str, spec: str, what: str) -> str:
    check_ref_arg(name, what)
    result = await run_git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", check=False)
    sha = result.stdout.strip()
    if result.returncode != 0 or not sha:
        raise GitError(f"{what} '{name}' does not exist in repo {repo}", ("rev-parse", spec), result.returncode)
    return sha


async def resolve_commit(repo: Path, ref: str, what: str = "base branch") -> str:
    """The full commit SHA `ref` (any ref or SHA) names in repo; GitError naming `what` when none."""
    return await _commit(repo, ref, ref, what)


async def branch_commit(repo: Path, branch: str, what: str) -> str:
    """The commit the local branch points at; GitError naming `what` when there is no such branch."""
    return await _commit(repo, branch, f"refs/heads/{branch}", what)


async def commits_since(repo: Path, old: str, branch: str) -> int:
    """How many commits `branch` has that `old` (a commit) lacks: how far a base moved since a task started."""
    check_ref_arg(old, "commit")
    check_ref_arg(branch, "branch")
    result = await run_git(repo, "rev-list", "--count", f"{old}..refs/heads/{branch}", "--")
    return int(result.stdout.strip() or 0)


async def commits_between(repo: Path, old: str, new: str) -> int:
    """How many commits `new` (a commit) has that `old` (a commit) lacks."""
    check_ref_arg(old, "commit")
    check_ref_arg(new, "commit")
    result = await run_git(repo, "rev-list", "--count", f"{old}..{new}", "--")
    return int(result.stdout.strip() or 0)


async def branch_exists(repo: Path, branch: str) -> bool:
    check_ref_arg(branch, "branch")
    result = await run_git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return result.returncode == 0


async def default_branch(repo: Path) -> str:
    """origin/HEAD's branch when it exists locally, else the main checkout's branch, else main/master."""
    result = await run_git(repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    if result.returncode == 0:
        name = result.stdout.strip().removeprefix("refs/remotes/origin/")
        if name and await branch_exists(repo, name):
            return name
    result = await run_git(repo, "symbolic-ref", "--quiet", "HEAD", check=False)
    if result.returncode == 0:
        ref = result.stdout.strip()
        if ref.startswith("refs/heads/") and await branch_exists(repo, ref.removeprefix("refs/heads/")):
            return ref.removeprefix("refs/heads/")
    for name in ("main", "master"):
        if await branch_exists(repo, name):
            return name
    raise GitError(
        f"cannot tell the default branch of repo {repo}: no origin/HEAD, main or master; pass a base branch"
    )


async def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = await run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        raise GitError(f"cannot compare commits in {repo}: {result.stderr.strip()}")
    return result.returncode == 0


async def commit_on_branch(repo: Path, commit: str, branch: str) -> bool:
    """Is `commit` part of `branch`? Settles a merge that a restart interrupted."""
    head = await branch_commit(repo, branch, "branch")
    return await is_ancestor(repo, commit, head)
