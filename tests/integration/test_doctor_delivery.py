"""`superset-bot doctor` on where work goes: the remote (reachable, its default branch there) and GitHub
for pull-request delivery (token, scopes, the repository and the right to push), against a bare repo
as the remote and the fake GitHub API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from conftest import git
from support.doctorsetup import Setup, check_lines, failures, ok_preset
from support.fakegithub import FakeGitHub
from support.remotes import with_remote

TOKEN = "ghp_doctor_token_0123456789abcdef"
SLUG = "acme/demo"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub.start(token=TOKEN) as gh:
        yield gh


def pr_env(gh: FakeGitHub, **more: str) -> dict[str, str]:
    return {"SUPERSET_GITHUB_TOKEN": TOKEN, "SUPERSET_GITHUB_API_URL": gh.url, "SUPERSET_GITHUB_REPOS": f"demo={SLUG}",
            "SUPERSET_REPO_DELIVER": "demo=pr", **more}


async def test_a_repo_delivering_pull_requests_is_checked_end_to_end(setup: Setup, github: FakeGitHub) -> None:
    with_remote(setup.tmp, setup.repo)
    github.add_repo(SLUG, setup.tmp / "remote.git")
    tip = git(setup.repo, "rev-parse", "main")

    code, text = await setup.doctor(**pr_env(github))
    assert code == 0, text
    lines = check_lines(text)
    for expected in (f"GitHub token works at {github.url}, scopes repo",
                     f"repo demo: remote origin reachable, main at {tip[:10]}",
                     f"repo demo: GitHub {SLUG}: reachable, default branch main"):
        assert any(expected in line for line in lines), f"no line with {expected!r}:\n{text}"
    assert not [r for r in github.requests if r.method != "GET"], "the doctor only reads"


async def test_a_token_without_the_repo_scope_fails_and_names_what_is_needed(setup: Setup) -> None:
    async with FakeGitHub.start(token=TOKEN, scopes="read:user") as gh:
        with_remote(setup.tmp, setup.repo)
        gh.add_repo(SLUG, setup.tmp / "remote.git")
        code, text = await setup.doctor(**pr_env(gh))
    assert code == 1
    assert any("GitHub token lacks the repo scope (it has: read:user)" in line for line in failures(text)), text


async def test_a_wrong_token_fails_without_printing_it(setup: Setup, github: FakeGitHub) -> None:
    with_remote(setup.tmp, setup.repo)
    github.add_repo(SLUG, setup.tmp / "remote.git")
    code, text = await setup.doctor(**pr_env(github, SUPERSET_GITHUB_TOKEN="ghp_wrong_token_999999999"))
    assert code == 1
    assert any("GitHub refused the token" in line for line in failures(text)), text


async def test_an_unreachable_remote_fails_when_it_is_delivered_to(setup: Setup, github: FakeGitHub) -> None:
    with_remote(setup.tmp, setup.repo, url=str(setup.tmp / "gone.git"))
    code, text = await setup.doctor(**pr_env(github, SUPERSET_REPO_DELIVER="demo=push"))
    assert code == 1
    assert any("repo demo: remote origin is not reachable" in line for line in failures(text)), text


async def test_a_remote_without_the_default_branch_and_a_push_delivery_without_a_remote(
        setup: Setup, github: FakeGitHub) -> None:
    bare = setup.tmp / "empty.git"
    git(setup.tmp, "init", "-q", "--bare", str(bare))
    git(setup.repo, "remote", "add", "origin", str(bare))
    code, text = await setup.doctor()  # local delivery: only a warning
    assert code == 0 and any("origin has no branch main" in line for line in check_lines(text)), text

    setup.write_preset("pushing", {**ok_preset(), "deliver": "push"})
    code, text = await setup.doctor(SUPERSET_REMOTE="none")
    assert code == 1
    assert any("repo demo: remote: none set, but its tasks may deliver by push" in line
               for line in failures(text)), text


async def test_no_token_for_a_pull_request_repo_says_which_setting(setup: Setup, github: FakeGitHub) -> None:
    with_remote(setup.tmp, setup.repo)
    code, text = await setup.doctor(**pr_env(github, SUPERSET_GITHUB_TOKEN=""))
    assert code == 1
    assert any("pull-request delivery needs SUPERSET_GITHUB_TOKEN" in line for line in failures(text)), text


async def test_the_sandbox_is_checked_only_when_a_preset_uses_it(setup: Setup) -> None:
    from support.bwrap import BWRAP

    code, text = await setup.doctor()
    assert not any(line[2:].startswith("sandbox") for line in check_lines(text)), text
    setup.write_preset("boxed", {**ok_preset(), "sandbox": "bwrap"})
    code, text = await setup.doctor(SUPERSET_BWRAP=str(setup.tmp / "nowhere" / "bwrap"))
    assert code == 0, "only a warning: the default preset is not sandboxed"
    assert any("sandbox:" in line and "is not installed" in line and "tasks of boxed will be refused" in line
               for line in check_lines(text)), text
    if BWRAP is not None:
        code, text = await setup.doctor(SUPERSET_BWRAP=BWRAP)
        assert code == 0 and any(line.startswith("✓ sandbox: bwrap works for boxed") for line in check_lines(text))
