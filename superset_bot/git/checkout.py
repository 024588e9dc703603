"""The checkout that has a base branch checked out: it follows the branch when a merge moves the
ref (or moved it before a restart), and a merge refuses rather than overwrite its local changes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from superset_bot.git.commands import GitError, repo_lock, run_git
from superset_bot.git.diff import parse_porcelain, split_z
from superset_bot.git.inventory import worktrees_on_branch
from superset_bot.git.refs import check_ref_arg


class BaseCheckoutDirty(GitError):
    """The base branch is checked out somewhere with changes a merge could overwrite."""

    def __init__(self, message: str, checkout: Path, files: list[str]) -> None:
        super().__init__(message)
        self.checkout = checkout
        self.files = files


async def base_checkout(repo: Path, base: str) -> Path | None:
    """The checkout that has `base` checked out (the main one first), or None."""
    checkouts = await worktrees_on_branch(repo, base)
    return checkouts[0] if checkouts else None


async def follow_checkout(repo: Path, branch: str, old: str, new: str) -> Path | None:
    """Bring the checkout of `branch` from `old` to `new` when its ref moved without it.

    A merge the bot was killed in the middle of moved the base ref but never updated the
    base's checkout, whose index still says `old`: `git status` there would show the merge as
    staged reverts. Nothing happens unless the index still matches `old`; local changes the
    update would overwrite make git refuse (GitError), as the merge itself would have.
    Returns the checkout it updated, or None.
    """
    checkout = await base_checkout(repo, check_ref_arg(branch, "branch"))
    if checkout is None or not await asyncio.to_thread(os.path.isdir, checkout):
        return None
    async with repo_lock(repo):
        head = await run_git(checkout, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
        stale = await run_git(checkout, "diff-index", "--cached", "--quiet", old, "--", check=False)
        if head.stdout.strip() != new or stale.returncode != 0:
            return None
        await run_git(checkout, "read-tree", "-m", "-u", old, new)
    return checkout


def _collides(untracked: str, changed: set[str]) -> bool:
    if untracked.rstrip("/") in changed:
        return True
    prefix = untracked.rstrip("/") + "/"
    parts = untracked.rstrip("/").split("/")
    ancestors = {"/".join(parts[:n]) for n in range(1, len(parts))}
    return any(c.startswith(prefix) or c in ancestors for c in changed)


async def refuse_if_dirty(checkout: Path, base: str, old: str, new: str) -> None:
    """BaseCheckoutDirty when moving `checkout` from old to new could overwrite its local changes."""
    out = await run_git(
        checkout, "--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all"
    )
    entries = parse_porcelain(out.stdout)
    tracked = [path for code, path in entries if code != "??"]
    untracked = [path for code, path in entries if code == "??"]
    blocking = tracked
    if untracked:
        diff = await run_git(checkout, "diff", "--name-only", "-z", "--no-renames", old, new)
        changed = set(split_z(diff.stdout))
        blocking = tracked + [u for u in untracked if _collides(u, changed)]
    if blocking:
        shown = ", ".join(blocking[:10]) + (f" and {len(blocking) - 10} more" if len(blocking) > 10 else "")
        raise BaseCheckoutDirty(
            f"base branch '{base}' is checked out at {checkout} with uncommitted changes the merge "
            f"would overwrite ({shown}); commit or stash them there, then merge again",
            checkout,
            blocking,
        )


async def update_checkout(repo: Path, checkout: Path, base: str, old: str, new: str) -> None:
    """Bring base's checkout from old to new; on failure put the base ref back (by CAS) and raise."""
    result = await run_git(checkout, "read-tree", "-m", "-u", old, new, check=False)
    if result.returncode == 0:
        return
    back = await run_git(
        repo, "update-ref", "-m", "superset-bot: undo merge", f"refs/heads/{base}", old, new, check=False
    )
    undo = (
        f"base branch '{base}' was put back at {old[:12]}"
        if back.returncode == 0
        else f"and base branch '{base}' could not be put back at {old[:12]}: {back.stderr.strip()}"
    )
    raise GitError(
        f"the checkout of '{base}' at {checkout} could not be updated ({result.stderr.strip()}); {undo}; "
        f"commit or stash the changes there and merge again"
    )
