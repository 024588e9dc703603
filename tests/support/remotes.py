"""A bare repository as a repo's `origin`, and someone else pushing to it: for the tests of fresh
bases, push delivery and pull requests."""

from __future__ import annotations

from pathlib import Path

from conftest import git


def with_remote(tmp_path: Path, repo: Path, url: str | None = None) -> Path:
    """A bare repo as `origin` of `repo` with main pushed, and a second clone of it (returned) to move it."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", url or str(bare))
    git(repo, "push", "-q", str(bare), "main:main")
    git(repo, "fetch", "-q", str(bare), "+refs/heads/main:refs/remotes/origin/main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    return clone


def push_change(clone: Path, name: str, content: str = "from the remote\n") -> str:
    """Someone else pushes a commit to the remote's main; returns it."""
    (clone / name).write_text(content)
    git(clone, "add", name)
    git(clone, "commit", "-q", "-m", f"add {name} elsewhere")
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")
