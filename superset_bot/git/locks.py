"""Ref locks: recovering from the `<ref>.lock` file a bot killed inside its own `update-ref` leaves behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from superset_bot.git.commands import git_dirs, repo_lock
from superset_bot.git.refs import check_ref_arg


async def drop_own_ref_lock(repo: Path, branch: str, commit: str) -> bool:
    """Remove `refs/heads/<branch>.lock` if it holds exactly `commit`; True when it did.

    git writes the new value into the lock before renaming it over the ref, so a bot killed
    inside its own `update-ref` leaves a lock holding its merge commit, and every later update
    of the base would fail with "File exists". A lock holding anything else is someone else's.
    """
    check_ref_arg(branch, "branch")
    common = (await git_dirs(repo))["git_common_dir"]
    lock = Path(common) / "refs" / "heads" / f"{branch}.lock"

    def drop() -> bool:
        try:
            if lock.read_text().strip() != commit:
                return False
            lock.unlink()
        except OSError:
            return False
        return True

    async with repo_lock(repo):
        return await asyncio.to_thread(drop)
