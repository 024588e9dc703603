"""superset_bot.git.diff against real repos: branch summaries, the full patch, live views, dirty paths."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.gitfiles import commit_file, write

from superset_bot.git.commands import GitError
from superset_bot.git.diff import full_patch, is_dirty, live_summary, summarize
from superset_bot.git.worktrees import commit_pending, create_worktree

# --------------------------------------------------------------------------- summaries


async def test_summarize_changes_renames_and_odd_names(make_repo: RepoFactory, tmp_path: Path) -> None:
    body = "".join(f"line {i}\n" for i in range(40))
    repo = make_repo(files={"keep.txt": "a\nb\nc\n", "moved.txt": body, "gone.txt": "bye\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "s1", "x")
    write(wt.path / "keep.txt", "a\nB\nc\nd\n")
    (wt.path / "dir").mkdir()
    (wt.path / "moved.txt").rename(wt.path / "dir" / "renamed.txt")
    (wt.path / "gone.txt").unlink()
    odd = "we ird\tname\n-é.txt"
    write(wt.path / odd, "odd\n")
    await commit_pending(wt.path, "work")
    write(wt.path / "second.txt", "1\n2\n")
    await commit_pending(wt.path, "more")
    # The base moving on must not show up in the task's summary.
    commit_file(repo, "base-only.txt", "base\n")

    summary = await summarize(repo, wt.branch, "main")
    by_path = {f.path: f for f in summary.files}
    assert summary.commits == 2
    assert summary.merge_base == wt.base_commit
    assert summary.head == git(repo, "rev-parse", wt.branch)
    assert set(by_path) == {"keep.txt", "dir/renamed.txt", "gone.txt", odd, "second.txt"}
    assert (by_path["keep.txt"].status, by_path["keep.txt"].added, by_path["keep.txt"].deleted) == ("M", 2, 1)
    renamed = by_path["dir/renamed.txt"]
    assert (renamed.status, renamed.old_path, renamed.added, renamed.deleted) == ("R", "moved.txt", 0, 0)
    assert (by_path["gone.txt"].status, by_path["gone.txt"].deleted) == ("D", 1)
    assert (by_path[odd].status, by_path[odd].added) == ("A", 1)
    assert not any(f.binary for f in summary.files)
    assert summary.insertions == 2 + 1 + 2
    assert summary.deletions == 1 + 1


def fast_import_history(repo: Path, count: int) -> None:
    """Add `count` commits on branch 'big' (one new file each) and one binary commit, in one process."""
    base = git(repo, "rev-parse", "main")
    chunks: list[bytes] = []
    for i in range(count):
        data = f"file {i}\n".encode()
        parent = f"from {base}\n" if i == 0 else ""
        chunks.append(
            f"commit refs/heads/big\ncommitter Agent <agent@example.com> {1_700_000_000 + i} +0000\n"
            f"data {len(f'commit {i}')}\ncommit {i}\n{parent}"
            f"M 100644 inline many/f{i:04d}.txt\ndata {len(data)}\n".encode()
            + data
            + b"\n"
        )
    blob = bytes(range(256)) * 64
    chunks.append(
        b"commit refs/heads/big\ncommitter Agent <agent@example.com> 1800000000 +0000\ndata 6\nbinary\n"
        + f"M 100644 inline blob.bin\ndata {len(blob)}\n".encode()
        + blob
        + b"\n"
    )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(chunks), check=True)



async def test_a_branch_started_ahead_of_its_base_shows_only_its_own_work(make_repo: RepoFactory,
                                                                          tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n"})
    git(repo, "checkout", "-q", "-b", "upstream")
    ahead = commit_file(repo, "upstream.txt", "from the remote\n")  # the remote's newer tip of main
    git(repo, "checkout", "-q", "main")
    wt = await create_worktree(repo, tmp_path / "wt", "s2", "x", "main", start=ahead)
    assert wt.base_commit == ahead and wt.base_branch == "main"
    write(wt.path / "mine.txt", "mine\n")
    await commit_pending(wt.path, "work")

    summary = await summarize(repo, wt.branch, "main", start=ahead)
    assert [f.path for f in summary.files] == ["mine.txt"] and summary.commits == 1
    assert "upstream.txt" not in await full_patch(repo, wt.branch, "main", start=ahead)
    assert {f.path for f in (await summarize(repo, wt.branch, "main")).files} == {"mine.txt", "upstream.txt"}
    # once main has the start commit and moved on (update from base), its merge base is later again
    git(repo, "merge", "-q", "--no-edit", "upstream")
    later = commit_file(repo, "later.txt", "later\n")
    git(wt.path, "merge", "-q", "--no-edit", later)
    summary = await summarize(repo, wt.branch, "main", start=ahead)
    assert [f.path for f in summary.files] == ["mine.txt"]

async def test_summarize_large_history_with_binary(make_repo: RepoFactory) -> None:
    repo = make_repo()
    fast_import_history(repo, 1000)
    summary = await summarize(repo, "big", "main")
    assert summary.commits == 1001
    assert len(summary.files) == 1001
    binary = [f for f in summary.files if f.binary]
    assert [f.path for f in binary] == ["blob.bin"]
    assert binary[0].added is None and binary[0].deleted is None and binary[0].status == "A"
    assert summary.insertions == 1000 and summary.deletions == 0
    patch = await full_patch(repo, "big", "main")
    assert "Binary files /dev/null and b/blob.bin differ" in patch
    assert "+file 999" in patch


async def test_summarize_unknown_refs(make_repo: RepoFactory) -> None:
    repo = make_repo()
    with pytest.raises(GitError, match=r"base branch 'nope' does not exist in repo"):
        await summarize(repo, "main", "nope")
    with pytest.raises(GitError, match="not allowed"):
        await summarize(repo, "--output=/tmp/x", "main")


def index_state(worktree: Path) -> tuple[int, bytes]:
    index = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    return index.stat().st_mtime_ns, hashlib.sha256(index.read_bytes()).digest()


async def test_live_summary_counts_uncommitted_and_leaves_index_alone(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo(files={"a.txt": "a\n", "b.txt": "b\n", ".gitignore": "build/\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "l1", "x")
    commit_file(wt.path, "committed.txt", "c\n", "agent commit")
    write(wt.path / "a.txt", "a\nmore\n")  # modified, unstaged
    write(wt.path / "new" / "untracked.txt", "u1\nu2\nu3\n")  # untracked
    write(wt.path / "build" / "out.bin", b"\0\1")  # ignored
    git(wt.path, "rm", "-q", "b.txt")  # staged deletion
    admin = repo / ".git" / "worktrees" / "l1"
    before = index_state(wt.path)
    time.sleep(0.01)

    summary = await live_summary(wt.path, wt.base_commit)
    by_path = {f.path: f for f in summary.files}
    assert set(by_path) == {"committed.txt", "a.txt", "new/untracked.txt", "b.txt"}
    assert by_path["new/untracked.txt"].added == 3 and by_path["new/untracked.txt"].status == "A"
    assert by_path["b.txt"].status == "D"
    assert summary.commits == 1
    assert summary.head == git(wt.path, "rev-parse", "HEAD")
    assert index_state(wt.path) == before
    assert not (admin / "index.lock").exists()
    # Still untracked and unstaged from the agent's point of view.
    assert git(wt.path, "diff", "--cached", "--name-only") == "b.txt"
    assert git(wt.path, "ls-files", "--others", "--exclude-standard") == "new/untracked.txt"


async def test_live_summary_while_agent_holds_index_lock(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "l2", "x")
    write(wt.path / "new.txt", "n\n")
    lock = repo / ".git" / "worktrees" / "l2" / "index.lock"
    lock.write_text("agent's lock")
    summary = await live_summary(wt.path, "main")
    assert [f.path for f in summary.files] == ["new.txt"]
    assert lock.read_text() == "agent's lock"


async def test_live_summary_never_creates_missing_index(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "l3", "x")
    index = repo / ".git" / "worktrees" / "l3" / "index"
    index.unlink()
    write(wt.path / "x.txt", "x\n")
    summary = await live_summary(wt.path, wt.base_commit)
    assert "x.txt" in [f.path for f in summary.files]
    assert not index.exists()


async def test_is_dirty(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "d1", "x")
    assert await is_dirty(wt.path) == []
    before = index_state(wt.path)
    os.utime(wt.path / "a.txt", (1, 1))  # stat-dirty only: status must not rewrite the index
    assert await is_dirty(wt.path) == []
    assert index_state(wt.path) == before
    write(wt.path / "a.txt", "b\n")
    write(wt.path / "odd name\n.txt", "x\n")
    assert sorted(await is_dirty(wt.path)) == ["a.txt", "odd name\n.txt"]
