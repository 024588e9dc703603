"""Diffs: what a branch changes against its base (summaries, the full patch), what a running agent
has changed so far, and which paths in a worktree are uncommitted or unmerged.

A running agent's worktree is only read: the live view goes through a temporary index.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from superset_bot.git.commands import GitError, run_git
from superset_bot.git.refs import resolve_commit, rev_parse

_DIFF_OPTS = ("-M", "--no-ext-diff", "--no-textconv", "--no-color")


def split_z(text: str) -> list[str]:
    """The fields of git's `-z` output (NUL-separated, with a trailing NUL)."""
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


@dataclass
class FileChange:
    path: str
    old_path: str | None
    status: str  # 'A', 'M', 'D', 'R', 'C', 'T'
    added: int | None
    deleted: int | None
    binary: bool


@dataclass
class DiffSummary:
    files: list[FileChange]
    commits: int
    insertions: int
    deletions: int
    merge_base: str
    head: str


def _parse_numstat(text: str) -> list[tuple[int | None, int | None, str]]:
    tokens = text.split("\0")
    result: list[tuple[int | None, int | None, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token:
            continue
        parts = token.split("\t", 2)
        if len(parts) != 3:
            continue
        added_s, deleted_s, path = parts
        if path == "":  # rename/copy: old and new path follow as separate fields
            path = tokens[i + 1] if i + 1 < len(tokens) else ""
            i += 2
        added = None if added_s == "-" else int(added_s)
        deleted = None if deleted_s == "-" else int(deleted_s)
        result.append((added, deleted, path))
    return result


def _parse_name_status(text: str) -> list[tuple[str, str, str | None]]:
    tokens = split_z(text)
    result: list[tuple[str, str, str | None]] = []
    i = 0
    while i < len(tokens):
        status = tokens[i]
        i += 1
        if not status:
            continue
        letter = status[0]
        if letter in "RC":
            old, new = tokens[i], tokens[i + 1]
            i += 2
            result.append((letter, new, old))
        else:
            result.append((letter, tokens[i], None))
            i += 1
    return result


async def _diff_files(cwd: Path, *spec: str, env: Mapping[str, str] | None = None) -> list[FileChange]:
    numstat_res, names_res = await asyncio.gather(
        run_git(cwd, "diff", *_DIFF_OPTS, "--numstat", "-z", *spec, env=env),
        run_git(cwd, "diff", *_DIFF_OPTS, "--name-status", "-z", *spec, env=env),
    )
    numstat = _parse_numstat(numstat_res.stdout)
    names = _parse_name_status(names_res.stdout)
    by_path = {path: (added, deleted) for added, deleted, path in numstat}
    files: list[FileChange] = []
    for index, (status, path, old) in enumerate(names):
        if index < len(numstat) and numstat[index][2] == path:
            added, deleted = numstat[index][0], numstat[index][1]
        else:
            added, deleted = by_path.get(path, (0, 0))
        files.append(FileChange(path, old, status, added, deleted, binary=added is None))
    return files


def _summary(files: list[FileChange], commits: int, merge_base: str, head: str) -> DiffSummary:
    return DiffSummary(
        files=files,
        commits=commits,
        insertions=sum(f.added or 0 for f in files),
        deletions=sum(f.deleted or 0 for f in files),
        merge_base=merge_base,
        head=head,
    )


async def _merge_base(repo: Path, a: str, b: str, a_name: str, b_name: str) -> str:
    result = await run_git(repo, "merge-base", a, b, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise GitError(f"'{b_name}' and '{a_name}' share no history in repo {repo}")
    return result.stdout.split()[0]


async def _count_commits(repo: Path, base: str, head: str, *also: str) -> int:
    out = await run_git(repo, "rev-list", "--count", f"{base}..{head}", *(f"^{c}" for c in also), "--")
    return int(out.stdout.strip() or 0)


async def _review_base(repo: Path, base_sha: str, head: str, start: str | None, base: str, branch: str) -> str:
    """Where the branch's own work begins: its merge base with `base`, or `start` (the commit it
    started from) when that is later, as when it started from the remote's newer tip of the base:
    the commits it got from there are not its work."""
    mb = await _merge_base(repo, base_sha, head, base, branch)
    if not start or start == mb:
        return mb
    ancestry = await asyncio.gather(*(run_git(repo, "merge-base", "--is-ancestor", a, b, check=False)
                                      for a, b in ((start, head), (mb, start))))
    return start if all(r.returncode == 0 for r in ancestry) else mb


async def summarize(repo: Path, branch: str, base: str, start: str | None = None) -> DiffSummary:
    """What `branch` changes compared with where it left `base` (their merge base, or `start`, the
    commit the branch was made at, when that is later)."""
    head = await resolve_commit(repo, branch, "branch")
    base_sha = await resolve_commit(repo, base, "base branch")
    mb = await _review_base(repo, base_sha, head, start, base, branch)
    also = (mb,) if mb != base_sha else ()
    files, commits = await asyncio.gather(_diff_files(repo, mb, head), _count_commits(repo, base_sha, head, *also))
    return _summary(files, commits, mb, head)


async def full_patch(repo: Path, branch: str, base: str, start: str | None = None) -> str:
    """The unified diff of `branch` against where it left `base` (as in `summarize`); binaries as
    'Binary files differ'."""
    head = await resolve_commit(repo, branch, "branch")
    base_sha = await resolve_commit(repo, base, "base branch")
    mb = await _review_base(repo, base_sha, head, start, base, branch)
    return (await run_git(repo, "diff", *_DIFF_OPTS, mb, head)).stdout


async def between(repo: Path, first: str, second: str) -> str:
    """The unified diff from branch `first` to branch `second` (two attempts at one task side by side)."""
    a = await resolve_commit(repo, first, "branch")
    b = await resolve_commit(repo, second, "branch")
    return (await run_git(repo, "diff", *_DIFF_OPTS, a, b)).stdout


async def live_summary(worktree: Path, base_commit: str) -> DiffSummary:
    """The running agent's work so far, uncommitted and untracked files included.

    Goes through a private temporary index, so the agent's index and its locks are never touched.
    """
    head = await rev_parse(worktree, "HEAD")
    base_sha = await resolve_commit(worktree, base_commit, "base")
    mb_res = await run_git(worktree, "merge-base", base_sha, head, check=False)
    mb = mb_res.stdout.split()[0] if mb_res.returncode == 0 and mb_res.stdout.strip() else base_sha
    real_index = (
        await run_git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index")
    ).stdout.strip()
    tmpdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="superset-index-")
    tmp_index = os.path.join(tmpdir, "index")
    env = {"GIT_INDEX_FILE": tmp_index}
    try:
        # Starting from a copy of the real index keeps its stat data, so only changed files are hashed.
        copied = await asyncio.to_thread(_copy_if_exists, real_index, tmp_index)
        added = None
        if copied:
            added = await run_git(worktree, "add", "-A", env=env, check=False, bot_write=True)
        if added is None or added.returncode != 0:
            await asyncio.to_thread(_unlink_quiet, tmp_index)
            await run_git(worktree, "read-tree", head, env=env, bot_write=True)
            await run_git(worktree, "add", "-A", env=env, bot_write=True)
        files = await _diff_files(worktree, "--cached", mb, env=env)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmpdir, True)
    commits = await _count_commits(worktree, mb, head)
    return _summary(files, commits, mb, head)


def _copy_if_exists(src: str, dst: str) -> bool:
    try:
        shutil.copyfile(src, dst)
    except OSError:
        return False
    return True


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def parse_porcelain(text: str) -> list[tuple[str, str]]:
    """(status code, path) for each entry of `git status --porcelain -z`."""
    tokens = split_z(text)
    result: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if len(token) < 4:
            continue
        code, path = token[:2], token[3:]
        result.append((code, path))
        if "R" in code or "C" in code:
            i += 1  # the original path of a rename/copy follows
    return result


async def is_dirty(worktree: Path, *, untracked: bool = True) -> list[str]:
    """Paths with uncommitted changes (and untracked files, unless told not to); [] when clean.

    Never writes the index.
    """
    mode = "--untracked-files=normal" if untracked else "--untracked-files=no"
    out = await run_git(worktree, "--no-optional-locks", "status", "--porcelain", "-z", mode)
    return [path for _code, path in parse_porcelain(out.stdout)]


async def unmerged_files(cwd: Path) -> list[str]:
    """Paths a merge or rebase in `cwd` left in conflict."""
    result = await run_git(cwd, "diff", "--name-only", "-z", "--diff-filter=U", check=False)
    return list(dict.fromkeys(split_z(result.stdout)))
