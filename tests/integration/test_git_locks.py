"""superset_bot.git.locks against a real repo: only the ref lock holding the bot's own commit is dropped."""

from __future__ import annotations

from pathlib import Path

from conftest import RepoFactory, git

from superset_bot.git.locks import drop_own_ref_lock


def lock_file(repo: Path) -> Path:
    return repo / ".git" / "refs" / "heads" / "main.lock"


async def test_drop_own_ref_lock(make_repo: RepoFactory) -> None:
    repo = make_repo()
    mine = git(repo, "rev-parse", "main")
    assert not await drop_own_ref_lock(repo, "main", mine)  # no lock at all
    lock_file(repo).write_text("f" * 40 + "\n")
    assert not await drop_own_ref_lock(repo, "main", mine)  # someone else's
    assert lock_file(repo).exists()
    lock_file(repo).write_text(mine + "\n")
    assert await drop_own_ref_lock(repo, "main", mine)
    assert not lock_file(repo).exists()
    git(repo, "update-ref", "refs/heads/main", mine)  # the ref can be updated again
