"""Helpers for the tests of superset_bot.git against real repositories: write and commit files,
list a repository's branches and worktrees."""

from __future__ import annotations

from pathlib import Path

from conftest import git


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def commit_file(
    cwd: Path, rel: str, content: str | bytes, message: str = "change", author: str | None = None
) -> str:
    write(cwd / rel, content)
    git(cwd, "add", "-A")
    extra = ["--author", author] if author else []
    git(cwd, "commit", "-q", "-m", message, *extra)
    return git(cwd, "rev-parse", "HEAD")


def worktree_paths(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines()
