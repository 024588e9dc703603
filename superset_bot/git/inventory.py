"""Inventory: which worktrees a repository has (git's own list, the bot's with activity and size,
warm pool spares) and what under the bot's folder or branch prefix no known task owns.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from superset_bot.git.commands import GitError, git_dirs, repo_lock, run_git
from superset_bot.git.naming import POOL_PREFIX, is_pool_spare, is_task_id, task_id_from_branch
from superset_bot.git.refs import check_ref_arg


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


@dataclass
class WorktreeEntry:
    """One record of `git worktree list --porcelain`."""

    path: Path
    head: str | None = None
    branch: str | None = None  # full ref, refs/heads/...
    bare: bool = False
    detached: bool = False
    locked: bool = False
    prunable: bool = False


async def worktree_entries(repo: Path) -> list[WorktreeEntry]:
    """Every worktree git lists for the repository, the main checkout (or bare repo dir) first."""
    out = (await run_git(repo, "worktree", "list", "--porcelain", "-z")).stdout
    entries: list[WorktreeEntry] = []
    current: WorktreeEntry | None = None
    for token in out.split("\0"):
        if token == "":
            current = None
            continue
        key, _, value = token.partition(" ")
        if key == "worktree":
            current = WorktreeEntry(Path(value))
            entries.append(current)
        elif current is None:
            continue
        elif key == "HEAD":
            current.head = value
        elif key == "branch":
            current.branch = value
        elif key == "bare":
            current.bare = True
        elif key == "detached":
            current.detached = True
        elif key == "locked":
            current.locked = True
        elif key == "prunable":
            current.prunable = True
    return entries


async def main_checkout(path: Path) -> Path:
    """The main worktree (or bare repo dir) that `path`, any worktree of it, belongs to."""
    entries = await worktree_entries(path)
    if not entries:
        raise GitError(f"{path} is not inside a git repository")
    return entries[0].path


@dataclass
class WorktreeInfo:
    path: Path
    branch: str | None
    head: str | None
    task_id: str | None
    last_activity: float
    size_bytes: int
    locked: bool
    prunable: bool


def _tree_size(path: str) -> int:
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _admin_dirs(common_dir: str) -> dict[str, str]:
    """realpath of each linked worktree -> its admin dir under <common>/worktrees/."""
    result: dict[str, str] = {}
    base = os.path.join(common_dir, "worktrees")
    try:
        names = os.listdir(base)
    except OSError:
        return result
    for name in names:
        admin = os.path.join(base, name)
        try:
            with open(os.path.join(admin, "gitdir"), encoding="utf-8", errors="replace") as fh:
                gitdir = fh.read().strip()
        except OSError:
            continue
        result[_real(os.path.dirname(gitdir))] = admin
    return result


def _activity_and_size(path: str, admin: str | None) -> tuple[float, int]:
    candidates: list[str] = []
    if admin:
        candidates += [os.path.join(admin, n) for n in ("HEAD", "index", os.path.join("logs", "HEAD"))]
    candidates.append(path)
    try:
        with os.scandir(path) as it:
            candidates += [e.path for e in it]
    except OSError:
        pass
    latest = 0.0
    for candidate in candidates:
        try:
            latest = max(latest, os.lstat(candidate).st_mtime)
        except OSError:
            continue
    return latest, _tree_size(path) if os.path.isdir(path) else 0


def _is_under(path: Path | str, root: str) -> bool:
    real = _real(path)
    return real != root and real.startswith(root.rstrip("/") + "/")


async def list_worktrees(repo: Path, root: Path) -> list[WorktreeInfo]:
    """The bot's worktrees of `repo` (those under `root`), with activity time and size on disk."""
    root_real = _real(root)
    entries = [e for e in await worktree_entries(repo) if _is_under(e.path, root_real)]
    if not entries:
        return []
    common = (await git_dirs(repo))["git_common_dir"]
    admins = await asyncio.to_thread(_admin_dirs, common)
    infos: list[WorktreeInfo] = []
    for entry in entries:
        activity, size = await asyncio.to_thread(
            _activity_and_size, str(entry.path), admins.get(_real(entry.path))
        )
        branch = entry.branch.removeprefix("refs/heads/") if entry.branch else None
        name = entry.path.name
        task_id = name if is_task_id(name) else (task_id_from_branch(branch) if branch else None)
        infos.append(
            WorktreeInfo(
                path=entry.path,
                branch=branch,
                head=entry.head,
                task_id=task_id,
                last_activity=activity,
                size_bytes=size,
                locked=entry.locked,
                prunable=entry.prunable,
            )
        )
    return infos


async def worktrees_on_branch(repo: Path, branch: str) -> list[Path]:
    """Checkouts (the main one first, if it is among them) that have `branch` checked out."""
    ref = f"refs/heads/{check_ref_arg(branch, 'branch')}"
    return [e.path for e in await worktree_entries(repo) if e.branch == ref and not e.bare and not e.prunable]


async def registered_worktrees(repo: Path) -> set[Path]:
    """Every linked worktree git has an entry for (real paths), even one whose folder is gone."""
    return {Path(_real(e.path)) for e in (await worktree_entries(repo))[1:]}


async def pool_worktrees(repo: Path, root: Path) -> dict[Path, str | None]:
    """Untaken warm worktrees under `root` with their HEAD; None for a folder git does not know."""
    root_real = _real(root)
    entries = [e for e in await worktree_entries(repo) if _is_under(e.path, root_real)]
    found: dict[Path, str | None] = {
        e.path: e.head for e in entries if not e.prunable and is_pool_spare(e.path, e.branch)
    }
    registered = {_real(e.path) for e in entries if not e.prunable}
    for extra in await asyncio.to_thread(_unregistered_dirs, root_real, registered):
        if extra.name.startswith(POOL_PREFIX):
            found[extra] = None
    return found


@dataclass
class Orphans:
    worktrees: list[Path]
    branches: list[str]
    missing: list[str]
    owners: dict[Path, str] = field(default_factory=dict)  # orphan worktree -> the task id its name or branch names


def _unregistered_dirs(root: str, registered: set[str]) -> list[Path]:
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    found: list[Path] = []
    for name in names:
        full = os.path.join(root, name)
        if os.path.isdir(full) and not os.path.islink(full) and _real(full) not in registered:
            found.append(Path(full))
    return found


async def find_orphans(repo: Path, root: Path, task_worktrees: Mapping[str, Path]) -> Orphans:
    """What under `root` and `superset/` belongs to no known task, and which tasks lost their worktree."""
    root_real = _real(root)
    known = set(task_worktrees)
    claimed = {_real(p) for p in task_worktrees.values()}
    all_entries = await worktree_entries(repo)
    registered = {_real(e.path) for e in all_entries if not e.prunable}
    infos = await list_worktrees(repo, root)
    orphan_paths: list[Path] = []
    owners: dict[Path, str] = {}
    for info in infos:
        owned = _real(info.path) in claimed or (info.task_id is not None and info.task_id in known)
        if not owned and not is_pool_spare(info.path, info.branch):
            orphan_paths.append(info.path)
            if info.task_id is not None:
                owners[info.path] = info.task_id
    listed = {_real(i.path) for i in infos}
    for extra in await asyncio.to_thread(_unregistered_dirs, root_real, listed):
        if _real(extra) not in claimed and extra.name not in known and not extra.name.startswith(POOL_PREFIX):
            orphan_paths.append(extra)
    refs = await run_git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/superset/")
    branches: list[str] = []
    for ref in refs.stdout.splitlines():
        name = ref.removeprefix("refs/heads/")
        tid = task_id_from_branch(name)
        if tid is None or tid not in known:
            branches.append(name)
    missing: list[str] = []
    for tid, path in task_worktrees.items():
        exists = await asyncio.to_thread(os.path.isdir, path)
        if not exists or _real(path) not in registered:
            missing.append(tid)
    return Orphans(worktrees=orphan_paths, branches=branches, missing=missing, owners=owners)


async def git_maintenance(repo: Path) -> None:
    """Forget worktrees whose folders are gone, then let git repack/gc if it thinks it should."""
    async with repo_lock(repo):
        await run_git(repo, "worktree", "prune")
    await run_git(
        repo,
        "-c",
        "gc.autoDetach=false",
        "-c",
        "maintenance.autoDetach=false",
        "maintenance",
        "run",
        "--auto",
    )
