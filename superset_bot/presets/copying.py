"""Copying a preset's `copy` entries from the main checkout into a worktree without ever reading or
writing through a symlink that leads outside either.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from superset_bot.presets.validation import PresetError, is_inside, relative_path_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyOutcome:
    copied: list[str]
    missing: list[str]


def _check_destination(dest: Path, worktree_real: Path, entry: str) -> None:
    """Refuse to write through a symlink: `dest` must not be one, and its parent must resolve inside."""
    if dest.is_symlink():
        raise PresetError(
            f'copy entry "{entry}": {dest} in the worktree is a symlink; refusing to write through it',
            field="copy",
        )
    if not is_inside(dest.parent.resolve(), worktree_real):
        raise PresetError(
            f'copy entry "{entry}": the destination leads outside the worktree through a symlink',
            field="copy",
        )


def _link_problem(link: Path, repo_real: Path) -> str | None:
    """Links are copied as links, and read in the worktree; only relative ones that stay inside do."""
    target = os.readlink(link)
    if os.path.isabs(target):
        return f"{link} is a symlink to an absolute path ({target}); only relative links inside the repository are copied"
    if not is_inside(Path(os.path.normpath(link.parent / target)), repo_real):
        return f"{link} is a symlink pointing outside the repository ({target})"
    return None


def _copy_tree(src_dir: Path, dest_dir: Path, repo_real: Path, worktree_real: Path, entry: str) -> None:
    # Validate everything before writing anything, so a bad link leaves no half copy behind.
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            problem = None
            if stat.S_ISLNK(mode):
                problem = _link_problem(path, repo_real)
            elif not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                problem = f"{path} is not a regular file or directory (a pipe, socket or device)"
            if problem:
                raise PresetError(f'copy entry "{entry}": {problem}', field="copy")
    # os.walk lists links to directories in `dirs` but does not descend into them.
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        target_dir = dest_dir / Path(root).relative_to(src_dir)
        _check_destination(target_dir, worktree_real, entry)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in [*dirs, *files]:
            src = Path(root) / name
            dest = target_dir / name
            if src.is_symlink():
                if dest.is_dir() and not dest.is_symlink():
                    raise PresetError(
                        f'copy entry "{entry}": {dest} is a directory in the worktree', field="copy"
                    )
                if dest.is_symlink() or dest.exists():
                    dest.unlink()  # replaces a link or file, never writes through it
                os.symlink(os.readlink(src), dest)
            elif src.is_file():
                _check_destination(dest, worktree_real, entry)
                shutil.copy2(src, dest, follow_symlinks=False)


def copy_entries(entries: Iterable[str], repo: Path, worktree: Path) -> CopyOutcome:
    """Copy each entry from the main checkout into the worktree; missing sources are skipped.

    Raises PresetError naming the entry for absolute paths, '..', a source that resolves
    outside the repository through a symlink, a destination that is or passes through a
    symlink, or a symlink inside a copied directory that points outside the repository.
    Blocking file work: call through asyncio.to_thread.
    """
    repo_real = Path(repo).resolve()
    worktree_real = Path(worktree).resolve()
    copied: list[str] = []
    missing: list[str] = []
    for entry in entries:
        problem = relative_path_problem(entry)
        if problem:
            raise PresetError(f'copy entry "{entry}": {problem}', field="copy")
        rel = PurePosixPath(entry.replace("\\", "/"))
        src = repo_real.joinpath(*rel.parts)
        dest = worktree_real.joinpath(*rel.parts)
        if not src.exists() and not src.is_symlink():
            missing.append(entry)
            continue
        src_real = src.resolve()
        if not is_inside(src_real, repo_real) or src_real == repo_real:
            raise PresetError(
                f'copy entry "{entry}": {src} leads outside the repository through a symlink; refusing to copy it',
                field="copy",
            )
        if not src_real.exists():
            missing.append(entry)  # a dangling link inside the repo
            continue
        _check_destination(dest, worktree_real, entry)
        if src_real.is_dir():
            _copy_tree(src_real, dest, repo_real, worktree_real, entry)
        elif src_real.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            _check_destination(dest, worktree_real, entry)
            if dest.is_dir():
                raise PresetError(
                    f'copy entry "{entry}": {dest} is a directory in the worktree', field="copy"
                )
            shutil.copy2(src_real, dest)
        else:
            raise PresetError(
                f'copy entry "{entry}": not a regular file or directory (a pipe, socket or device)',
                field="copy",
            )
        copied.append(entry)
    if missing:
        log.info("copy: not in the main checkout, skipped: %s", ", ".join(missing))
    return CopyOutcome(copied=copied, missing=missing)


def copy_files(entries: Iterable[str], repo: Path, worktree: Path) -> list[str]:
    """`copy_entries` returning only what was copied (missing sources are logged and skipped)."""
    return copy_entries(entries, repo, worktree).copied
