"""Reading refs: the commit a ref or branch names, and whether one commit is already part of another's history."""

from __future__ import annotations

from pathlib import Path

from superset_bot.git.commands import GitError, check_ref_arg, run_git


async def rev_parse(cwd: Path, ref: str) -> str:
    """The object `ref` names in cwd (a commit, or a tree for `X^{tree}`); GitError when none."""
    return (await run_git(cwd, "rev-parse", "--verify", "--quiet", ref)).stdout.strip()


async def branch_commit(repo: Path, branch: str, what: str) -> str:
    """The commit the local branch points at; GitError naming `what` when there is no such branch."""
    check_ref_arg(branch, what)
    result = await run_git(
        repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False
    )
    sha = result.stdout.strip()
    if result.returncode != 0 or not sha:
        raise GitError(f"{what} '{branch}' does not exist in repo {repo}")
    return sha


async def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = await run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        raise GitError(f"cannot compare commits in {repo}: {result.stderr.strip()}")
    return result.returncode == 0


async def commit_on_branch(repo: Path, commit: str, branch: str) -> bool:
    """Is `commit` part of `branch`? Settles a merge that a restart interrupted."""
    head = await branch_commit(repo, branch, "branch")
    return await is_ancestor(repo, commit, head)
