"""superset_bot.git.remote against real repos: remotes by name, fetching one branch into its
remote-tracking ref, and fetches that fail, hang or carry credentials."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.gitfiles import commit_file

from superset_bot.git.commands import GitError
from superset_bot.git.remote import FetchError, fetch_branch, has_remote


async def test_fetch_one_branch_into_its_tracking_ref(make_repo: RepoFactory, tmp_path: Path) -> None:
    upstream = make_repo("upstream")
    git(upstream, "branch", "other")
    tip = commit_file(upstream, "new.txt", "new\n")
    repo = make_repo("demo")
    assert not await has_remote(repo, "origin")
    git(repo, "remote", "add", "origin", str(upstream))
    assert await has_remote(repo, "origin") and not await has_remote(repo, "upstream")

    assert await fetch_branch(repo, "origin", "main") == tip
    assert git(repo, "rev-parse", "refs/remotes/origin/main") == tip
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/remotes/") == "refs/remotes/origin/main", \
        "only the branch asked for"
    assert git(repo, "tag") == "" and not (Path(git(repo, "rev-parse", "--git-dir")) / "FETCH_HEAD").exists()
    assert await fetch_branch(repo, "origin", "nope") is None, "a branch the remote lacks is not an error"
    with pytest.raises(GitError, match="names starting with '-'"):
        await fetch_branch(repo, "--upload-pack=evil", "main")


async def test_a_fetch_that_hangs_is_ended_with_its_transport(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo")
    pid_file = tmp_path / "ssh.pid"
    fake_ssh = tmp_path / "slow-ssh"
    fake_ssh.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake_ssh.chmod(0o755)
    git(repo, "config", "core.sshCommand", str(fake_ssh))
    git(repo, "remote", "add", "origin", "ssh://git@example.invalid/x.git")
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"could not fetch main from origin: no answer within 0\.5 s"):
        await fetch_branch(repo, "origin", "main", timeout=0.5)
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the hung ssh outlived the fetch's timeout")


async def test_errors_say_why_without_credentials(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo")
    git(repo, "remote", "add", "origin", str(tmp_path / "missing.git"))
    git(repo, "remote", "add", "web", "https://bob:s3cret@127.0.0.1:9/x.git")
    with pytest.raises(FetchError) as err:
        await fetch_branch(repo, "origin", "main")
    assert "does not appear to be a git repository" in err.value.reason
    with pytest.raises(FetchError) as err:
        await fetch_branch(repo, "web", "main")
    assert "s3cret" not in str(err.value) and "bob" not in str(err.value) and "s3cret" not in err.value.stderr
