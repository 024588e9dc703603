"""superset_bot.git.worktrees against real repos: names, create, commit, summaries, discard, list, orphans."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from hypothesis import given, settings
from hypothesis import strategies as st

from superset_bot.git.commands import GitError
from superset_bot.git.worktrees import (
    BOT_AUTHOR,
    branch_name,
    commit_pending,
    create_worktree,
    discard,
    find_orphans,
    full_patch,
    git_maintenance,
    is_dirty,
    list_worktrees,
    live_summary,
    slugify,
    summarize,
    update_from_base,
)


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def commit_file(cwd: Path, rel: str, content: str | bytes, message: str = "change") -> str:
    write(cwd / rel, content)
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def worktree_paths(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines()


def valid_branch(name: str) -> bool:
    done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == name


# --------------------------------------------------------------------------- names

NASTY_PROMPTS = [
    "Fix the flaky login test!",
    "--upload-pack=evil",
    "-rf /",
    "$(rm -rf /); `reboot` | cat /etc/passwd > /dev/null & echo ${HOME} ; <x> * ? ~ ^ : \\ [a] {b}",
    "refs/heads/main..HEAD@{1}.lock",
    "..",
    ".lock",
    "Café crème brûlée – naïve façade",
    "日本語のテスト",
    "Ünïcödé 🚀 emoji",
    "\x00\x01\x7f control \t tabs \n newlines",
    "",
    "   ",
    "-",
    "a" * 10_000,
    "word " * 2_000,
]


@pytest.mark.parametrize("prompt", NASTY_PROMPTS)
def test_branch_names_are_safe(prompt: str) -> None:
    slug = slugify(prompt)
    assert slug and len(slug) <= 40
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in slug)
    assert not slug.startswith("-") and not slug.endswith("-") and "--" not in slug
    name = branch_name("abc123", prompt)
    assert name == f"superset/abc123-{slug}"
    assert valid_branch(name)


def test_slug_examples() -> None:
    assert slugify("Fix the flaky login test!") == "fix-the-flaky-login-test"
    assert slugify("--upload-pack=evil") == "upload-pack-evil"
    assert slugify("Café crème") == "cafe-creme"
    assert slugify("日本語") == "task"
    assert slugify("") == "task"
    assert slugify("a" * 10_000) == "a" * 40
    assert slugify("alpha beta gamma delta", max_len=13) == "alpha-beta"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=80))
def test_slug_property(prompt: str, max_len: int) -> None:
    slug = slugify(prompt, max_len)
    assert 1 <= len(slug) <= max(max_len, 4)
    assert slug.strip("-") == slug and "--" not in slug
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


@pytest.mark.parametrize("task_id", ["", "ABC", "a-b", "../x", "a b", "-x", "abc\n", "x" * 33])
def test_bad_task_ids(task_id: str) -> None:
    with pytest.raises(GitError, match="task id"):
        branch_name(task_id, "prompt")


# --------------------------------------------------------------------------- create


async def test_create_worktree(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "hello\n"})
    root = tmp_path / "data" / "worktrees" / "demo"
    wt = await create_worktree(repo, root, "t1", "Add a --help flag")
    assert wt.path == root / "t1"
    assert wt.branch == "superset/t1-add-a-help-flag"
    assert wt.base_branch == "main"
    assert wt.base_commit == git(repo, "rev-parse", "main")
    assert (wt.path / "README.md").read_text() == "hello\n"
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == wt.branch
    assert str(wt.path) in worktree_paths(repo)
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"


async def test_create_from_other_base(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "-b", "develop")
    sha = commit_file(repo, "dev.txt", "dev\n")
    git(repo, "checkout", "-q", "main")
    wt = await create_worktree(repo, tmp_path / "wt", "t2", "x", base="develop")
    assert wt.base_branch == "develop" and wt.base_commit == sha
    assert (wt.path / "dev.txt").exists()


async def test_create_unknown_base(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    with pytest.raises(GitError) as info:
        await create_worktree(repo, tmp_path / "wt", "t3", "x", base="nope")
    assert str(info.value) == f"base branch 'nope' does not exist in repo {repo}"
    assert not (tmp_path / "wt" / "t3").exists()
    assert branches(repo) == ["main"]


@pytest.mark.parametrize("base", ["-x", "--upload-pack=evil", "main branch"])
async def test_create_rejects_option_like_base(make_repo: RepoFactory, tmp_path: Path, base: str) -> None:
    repo = make_repo()
    with pytest.raises(GitError, match="not allowed"):
        await create_worktree(repo, tmp_path / "wt", "t4", "x", base=base)
    assert branches(repo) == ["main"]


async def test_create_existing_path(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    existing = tmp_path / "wt" / "t5"
    write(existing / "keep.txt", "mine\n")
    with pytest.raises(GitError, match=str(existing)):
        await create_worktree(repo, tmp_path / "wt", "t5", "x")
    assert (existing / "keep.txt").read_text() == "mine\n"
    assert branches(repo) == ["main"]


async def test_create_failing_halfway_leaves_nothing(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n", ".gitattributes": "*.txt filter=boom\n"})
    # A required smudge filter that fails makes the checkout fail after git made the branch.
    git(repo, "config", "filter.boom.smudge", "false")
    git(repo, "config", "filter.boom.required", "true")
    with pytest.raises(GitError, match="cannot create the worktree for task t6"):
        await create_worktree(repo, tmp_path / "wt", "t6", "x")
    assert not (tmp_path / "wt" / "t6").exists()
    assert branches(repo) == ["main"]
    assert worktree_paths(repo) == [str(repo)]
    assert not (repo / ".git" / "worktrees").exists() or not list((repo / ".git" / "worktrees").iterdir())


async def test_create_does_not_run_repo_hooks(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    marker = tmp_path / "hook-ran"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    hook.chmod(0o755)
    await create_worktree(repo, tmp_path / "wt", "t7", "x")
    assert not marker.exists()


async def test_create_same_task_twice(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    await create_worktree(repo, tmp_path / "wt", "t8", "x")
    with pytest.raises(GitError, match="already exists"):
        await create_worktree(repo, tmp_path / "wt", "t8", "x")


# --------------------------------------------------------------------------- commit_pending


async def test_commit_pending(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "one\n", "old.txt": "old\n", ".gitignore": "*.log\n"})
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    wt = await create_worktree(repo, tmp_path / "wt", "c1", "x")
    assert await commit_pending(wt.path, "nothing") is None
    write(wt.path / "README.md", "two\n")
    write(wt.path / "src" / "new.py", "print('hi')\n")
    write(wt.path / "debug.log", "ignored\n")
    (wt.path / "old.txt").unlink()
    sha = await commit_pending(wt.path, "agent work")
    assert sha == git(wt.path, "rev-parse", "HEAD")
    assert (
        git(wt.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s")
        == f"{BOT_AUTHOR}|{BOT_AUTHOR}|agent work"
    )
    files = git(wt.path, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["A\tsrc/new.py", "D\told.txt", "M\tREADME.md"]
    assert git(wt.path, "status", "--porcelain") == ""
    assert (wt.path / "debug.log").exists()
    assert await commit_pending(wt.path, "again") is None


async def test_commit_pending_keeps_an_agents_own_files_out_by_glob(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"README.md": "one\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "c3", "x")
    write(wt.path / ".aider.chat.history.md", "# chat\n")
    write(wt.path / ".aider.tags.cache.v4" / "cache.db", "tags")
    write(wt.path / "src" / ".aider.local", "nested: only the top level is the agent's\n")
    write(wt.path / "hello.txt", "hi\n")
    await commit_pending(wt.path, "agent work", exclude_globs=[".aider*"])
    files = git(wt.path, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["hello.txt", "src/.aider.local"]
    assert (wt.path / ".aider.chat.history.md").exists()
    assert await commit_pending(wt.path, "again", exclude_globs=[".aider*"]) is None


async def test_commit_pending_custom_author(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "c2", "x")
    write(wt.path / "f.txt", "x\n")
    await commit_pending(wt.path, "msg", author="Ada Lovelace <ada@example.com>")
    assert git(wt.path, "log", "-1", "--format=%an|%ae") == "Ada Lovelace|ada@example.com"
    write(wt.path / "g.txt", "x\n")
    with pytest.raises(GitError, match="author"):
        await commit_pending(wt.path, "msg", author="nobody")


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


# --------------------------------------------------------------------------- update_from_base


async def test_update_from_base_clean(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "u1", "x")
    commit_file(wt.path, "task.txt", "task\n")
    commit_file(repo, "base.txt", "base\n")
    assert await update_from_base(wt.path, "main") == []
    assert (wt.path / "base.txt").exists()
    assert (
        git(wt.path, "log", "-1", "--format=%an <%ae>|%s")
        == f"{BOT_AUTHOR}|Merge branch 'main' into {wt.branch}"
    )
    assert git(repo, "rev-parse", "main") in git(wt.path, "log", "-1", "--format=%P")


async def test_update_from_base_conflict_left_for_agent(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "one\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "u2", "x")
    commit_file(wt.path, "shared.txt", "task\n")
    commit_file(repo, "shared.txt", "base\n")
    assert await update_from_base(wt.path, "main") == ["shared.txt"]
    assert "<<<<<<<" in (wt.path / "shared.txt").read_text()
    write(wt.path / "shared.txt", "resolved\n")
    sha = await commit_pending(wt.path, "resolve")
    assert sha is not None
    assert len(git(wt.path, "log", "-1", "--format=%P").split()) == 2


async def test_update_from_base_refuses_to_overwrite(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"shared.txt": "one\n"})
    wt = await create_worktree(repo, tmp_path / "wt", "u3", "x")
    commit_file(repo, "shared.txt", "base\n")
    write(wt.path / "shared.txt", "uncommitted\n")
    with pytest.raises(GitError, match="could not merge 'main'"):
        await update_from_base(wt.path, "main")
    assert (wt.path / "shared.txt").read_text() == "uncommitted\n"


# --------------------------------------------------------------------------- discard


async def test_discard_dirty_and_locked(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n", ".gitignore": "node_modules/\n"})
    dirty = await create_worktree(repo, tmp_path / "wt", "x1", "dirty")
    locked = await create_worktree(repo, tmp_path / "wt", "x2", "locked")
    write(dirty.path / "a.txt", "changed\n")
    write(dirty.path / "untracked.txt", "u\n")
    write(dirty.path / "node_modules" / "pkg" / "index.js", "ignored\n")
    readonly = dirty.path / "ro"
    write(readonly / "f.txt", "x\n")
    readonly.chmod(0o555)
    git(repo, "worktree", "lock", "--reason", "agent running", str(locked.path))
    write(locked.path / "b.txt", "b\n")

    for wt in (dirty, locked):
        await discard(repo, wt.path, wt.branch)
        assert not wt.path.exists()
    assert branches(repo) == ["main"]
    assert worktree_paths(repo) == [str(repo)]
    # Idempotent, also for a worktree whose folder is already gone.
    await discard(repo, dirty.path, dirty.branch)
    gone = await create_worktree(repo, tmp_path / "wt", "x3", "gone")
    subprocess.run(["rm", "-rf", str(gone.path)], check=True)
    await discard(repo, gone.path, gone.branch)
    assert worktree_paths(repo) == [str(repo)]
    assert branches(repo) == ["main"]


async def test_discard_refuses_main_checkout(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    with pytest.raises(GitError, match="main checkout"):
        await discard(repo, repo, None)
    assert (repo / "README.md").exists()
    plain = tmp_path / "plain"
    write(plain / "precious.txt", "keep\n")
    with pytest.raises(GitError, match="not a git worktree"):
        await discard(repo, plain, None)
    assert (plain / "precious.txt").exists()


# --------------------------------------------------------------------------- list / orphans / maintenance


async def test_list_worktrees(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    root = tmp_path / "wt"
    started = time.time() - 2
    a = await create_worktree(repo, root, "aa1", "first")
    b = await create_worktree(repo, root, "bb2", "second")
    git(repo, "worktree", "add", "-q", "-b", "elsewhere", str(tmp_path / "outside"))
    write(a.path / "big.bin", b"x" * 100_000)
    git(repo, "worktree", "lock", str(b.path))

    infos = {i.task_id: i for i in await list_worktrees(repo, root)}
    assert set(infos) == {"aa1", "bb2"}
    assert infos["aa1"].branch == a.branch and infos["aa1"].head == a.base_commit
    assert infos["aa1"].size_bytes >= 100_000 > infos["bb2"].size_bytes > 0
    assert infos["aa1"].last_activity >= started
    assert infos["bb2"].locked and not infos["aa1"].locked
    assert not infos["aa1"].prunable

    subprocess.run(["rm", "-rf", str(a.path)], check=True)
    infos = {i.task_id: i for i in await list_worktrees(repo, root)}
    assert infos["aa1"].prunable and infos["aa1"].size_bytes == 0


async def test_find_orphans(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    root = tmp_path / "wt"
    alive = await create_worktree(repo, root, "alive1", "alive")
    lost = await create_worktree(repo, root, "lost2", "lost")
    stray = await create_worktree(repo, root, "stray3", "stray")
    git(repo, "branch", "superset/old4-leftover")
    git(repo, "branch", "feature/not-ours")
    junk = root / "junk5"
    write(junk / "file.txt", "x\n")
    subprocess.run(["rm", "-rf", str(lost.path)], check=True)

    orphans = await find_orphans(repo, root, {"alive1": alive.path, "lost2": lost.path})
    assert sorted(map(str, orphans.worktrees)) == sorted([str(stray.path), str(junk)])
    assert sorted(orphans.branches) == ["superset/old4-leftover", stray.branch]
    assert orphans.missing == ["lost2"]


async def test_git_maintenance_prunes(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    wt = await create_worktree(repo, tmp_path / "wt", "m1", "x")
    subprocess.run(["rm", "-rf", str(wt.path)], check=True)
    assert str(wt.path) in worktree_paths(repo)
    await git_maintenance(repo)
    assert worktree_paths(repo) == [str(repo)]


async def test_cancelled_create_leaves_nothing(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(files={"a.txt": "a\n", ".gitattributes": "*.txt filter=slow\n"})
    # A slow checkout (smudge filter) keeps `worktree add` busy long enough to cancel it midway.
    git(repo, "config", "filter.slow.smudge", "sleep 30; cat")
    git(repo, "config", "filter.slow.required", "true")
    root = tmp_path / "wt"
    creating = asyncio.create_task(create_worktree(repo, root, "k1", "x"))
    for _ in range(1000):
        if (root / "k1" / ".git").exists():
            break
        await asyncio.sleep(0.01)
    assert not creating.done()
    creating.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creating
    assert not (root / "k1").exists()
    assert branches(repo) == ["main"]
    assert worktree_paths(repo) == [str(repo)]
