"""The fake GitHub must answer what GitHub answers, through a plain aiohttp client and through gidgethub
(the bot's client), or bot tests against it prove nothing: auth, rate limits and ETags, pull requests
over a real bare repo, merges of each method landing real commits, checks and statuses."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import gidgethub
import pytest
from conftest import RepoFactory, git
from gidgethub.aiohttp import GitHubAPI
from multidict import CIMultiDictProxy
from support.fakegithub import ApiError, FakeGitHub
from support.gitfiles import commit_file

TOKEN = "ghp_" + "T" * 36
PULLS = "/repos/acme/demo/pulls"


@dataclass
class Remote:
    """A working clone (`work`, origin = `bare`) and the bare repo the fake serves."""

    work: Path
    bare: Path

    def branch(self, name: str, files: dict[str, str], start: str = "main", author: str | None = None) -> str:
        """Push a branch `name` off `start` with one commit per file; returns its tip."""
        git(self.work, "checkout", "-q", "-B", name, start)
        tip = ""
        for rel, content in files.items():
            tip = commit_file(self.work, rel, content, message=f"add {rel}", author=author)
        git(self.work, "push", "-q", "--force", "origin", f"{name}:{name}")
        git(self.work, "checkout", "-q", "main")
        return tip

    def advance(self, branch: str, rel: str, content: str) -> str:
        """Someone else pushes one more commit to `branch`."""
        git(self.work, "checkout", "-q", branch)
        tip = commit_file(self.work, rel, content, message=f"change {rel}")
        git(self.work, "push", "-q", "origin", branch)
        git(self.work, "checkout", "-q", "main")
        return tip

    def tip(self, branch: str) -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{branch}")

    def has(self, branch: str) -> bool:
        return bool(git(self.bare, "for-each-ref", f"refs/heads/{branch}"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def remote(make_repo: RepoFactory, tmp_path: Path) -> Remote:
    work = make_repo("demo", {"README.md": "# demo\n", "shared.txt": "base version\n"})
    bare = tmp_path / "demo.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    git(work, "remote", "add", "origin", str(bare))
    return Remote(work, bare)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def gh(remote: Remote) -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub.start(token=TOKEN) as fake:
        fake.add_repo("acme/demo", remote.bare, default_branch="main")
        yield fake


@pytest.fixture
def api(gh: FakeGitHub, session: aiohttp.ClientSession) -> GitHubAPI:
    return GitHubAPI(session, "superset-bot", oauth_token=TOKEN, base_url=gh.url, cache={})


async def call(
    session: aiohttp.ClientSession,
    gh: FakeGitHub,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One raw request: (status, parsed JSON body or None, response headers)."""
    sent = {"Accept": "application/vnd.github+json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"token {token}"
    async with session.request(method, gh.url + path, json=body, headers=sent) as resp:
        raw = await resp.read()
        return resp.status, (await resp.json() if raw else None), resp.headers


async def open_pull(
    api: GitHubAPI, head: str = "feature", title: str = "Add feature", **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = await api.post(PULLS, data={"title": title, "head": head, "base": "main", **extra})
    return data


# -- auth, identity, rate-limit headers -------------------------------------------------------------


async def test_requests_without_the_token_are_refused(gh: FakeGitHub, session: aiohttp.ClientSession) -> None:
    status, body, headers = await call(session, gh, "GET", "/user", token=None)
    assert status == 401 and body["message"] == "Requires authentication" and body["documentation_url"]
    status, body, _ = await call(session, gh, "GET", "/user", token="ghp_wrong")
    assert status == 401 and body["message"] == "Bad credentials"
    async with session.get(gh.url + "/user", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
        assert {k: v for k, v in (await resp.json()).items() if k in ("login", "id", "type")} == {
            "login": "superset-bot",
            "id": 1,
            "type": "User",
        }
        assert resp.headers["X-OAuth-Scopes"] == "repo"
    assert [(r.method, r.path, r.status, r.counted) for r in gh.requests] == [
        ("GET", "/user", 401, False),
        ("GET", "/user", 401, False),
        ("GET", "/user", 200, True),
    ]
    assert "authorization" not in gh.requests[0].headers
    assert gh.requests[2].headers["authorization"] == f"Bearer {TOKEN}"
    assert gh.rate_used == 1, "refused requests do not use up the rate limit"

    wrong = GitHubAPI(session, "superset-bot", oauth_token="ghp_wrong", base_url=gh.url)
    with pytest.raises(gidgethub.BadRequest) as info:
        await wrong.getitem("/user")
    assert info.value.status_code == 401


async def test_every_answer_carries_the_rate_limit(gh: FakeGitHub, session: aiohttp.ClientSession) -> None:
    seen = []
    for path in ("/user", "/repos/acme/demo", "/repos/acme/nope", "/no/such/route"):
        status, body, headers = await call(session, gh, "GET", path)
        seen.append((status, headers["X-RateLimit-Used"], headers["X-RateLimit-Remaining"]))
        assert headers["X-RateLimit-Limit"] == "5000" and headers["X-RateLimit-Resource"] == "core"
        assert 0 < int(headers["X-RateLimit-Reset"]) - gh.clock() <= 3601
    assert seen == [(200, "1", "4999"), (200, "2", "4998"), (404, "3", "4997"), (404, "4", "4996")]
    status, body, _ = await call(session, gh, "GET", "/no/such/route")
    assert body["message"] == "Not Found" and body["documentation_url"].startswith("https://docs.github.com")
    status, body, headers = await call(session, gh, "GET", "/rate_limit")
    assert body["resources"]["core"] == {
        "limit": 5000,
        "used": 5,
        "remaining": 4995,
        "reset": int(headers["X-RateLimit-Reset"]),
    }
    assert headers["X-RateLimit-Used"] == "5", "asking for the rate limit does not count"


async def test_a_repository(api: GitHubAPI, gh: FakeGitHub) -> None:
    repo = await api.getitem("/repos/acme/demo")
    assert repo["full_name"] == "acme/demo" and repo["name"] == "demo" and repo["owner"]["login"] == "acme"
    assert repo["default_branch"] == "main"
    assert repo["permissions"] == {
        "admin": False,
        "maintain": False,
        "push": True,
        "triage": True,
        "pull": True,
    }
    assert (repo["allow_merge_commit"], repo["allow_squash_merge"], repo["allow_rebase_merge"]) == (
        True,
        True,
        True,
    )
    assert repo["html_url"] == f"{gh.web_url}/acme/demo" and repo["url"] == f"{gh.url}/repos/acme/demo"
    with pytest.raises(gidgethub.BadRequest) as info:
        await api.getitem("/repos/acme/nope")
    assert info.value.status_code == 404 and str(info.value) == "Not Found"


# -- pull requests -----------------------------------------------------------------------------------


async def test_create_a_pull_request(
    api: GitHubAPI, gh: FakeGitHub, remote: Remote, session: aiohttp.ClientSession
) -> None:
    tip = remote.branch("feature", {"feature.txt": "new\n"})
    pr = await open_pull(api, body="It adds a feature.")
    assert pr["number"] == 1 and pr["state"] == "open" and pr["title"] == "Add feature"
    assert pr["body"] == "It adds a feature." and pr["draft"] is False
    assert pr["html_url"] == f"{gh.web_url}/acme/demo/pull/1" and pr["url"] == f"{gh.url}{PULLS}/1"
    assert {k: pr["head"][k] for k in ("ref", "sha", "label")} == {
        "ref": "feature",
        "sha": tip,
        "label": "acme:feature",
    }
    assert {k: pr["base"][k] for k in ("ref", "sha", "label")} == {
        "ref": "main",
        "sha": remote.tip("main"),
        "label": "acme:main",
    }
    assert (pr["merged"], pr["merged_at"], pr["merged_by"], pr["merge_commit_sha"]) == (
        False,
        None,
        None,
        None,
    )
    assert pr["mergeable"] is None, "GitHub has not worked mergeability out yet when it answers the creation"
    assert pr["user"]["login"] == "superset-bot"

    with pytest.raises(gidgethub.ValidationError) as dup:
        await open_pull(api)
    assert dup.value.status_code == 422 and "A pull request already exists for acme:feature." in str(
        dup.value
    )
    status, body, _ = await call(
        session, gh, "POST", PULLS, {"title": "x", "head": "acme:feature", "base": "main"}
    )
    assert status == 422 and body["message"] == "Validation Failed"
    assert body["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for acme:feature.",
        }
    ]

    with pytest.raises(gidgethub.InvalidField) as missing:
        await open_pull(api, head="nope")
    assert missing.value.errors == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    remote.branch("same", {})
    status, body, _ = await call(session, gh, "POST", PULLS, {"title": "x", "head": "same", "base": "main"})
    assert status == 422
    assert body["errors"] == [
        {"resource": "PullRequest", "code": "custom", "message": "No commits between main and same"}
    ]
    status, body, _ = await call(session, gh, "POST", PULLS, {"head": "feature", "base": "main"})
    assert status == 422 and body["errors"] == [
        {"resource": "PullRequest", "code": "missing_field", "field": "title"}
    ]
    status, body, _ = await call(session, gh, "POST", PULLS, {"title": 5, "head": "feature", "base": "main"})
    assert status == 422 and "properties/title" in body["message"]

    remote.branch("other", {"other.txt": "x\n"})
    second = await open_pull(api, head="acme:other", title="Other", draft=True)
    assert second["number"] == 2 and second["head"]["ref"] == "other" and second["draft"] is True
    assert sorted(gh.repo("acme/demo").pulls) == [1, 2], "refused creations make nothing"


async def test_a_pull_request_follows_its_branches(api: GitHubAPI, gh: FakeGitHub, remote: Remote) -> None:
    remote.branch("feature", {"feature.txt": "new\n"})
    await open_pull(api)
    pr = await api.getitem(f"{PULLS}/1")
    assert pr["mergeable"] is True and pr["mergeable_state"] == "clean" and pr["commits"] == 1
    assert (pr["additions"], pr["deletions"], pr["changed_files"]) == (1, 0, 1)

    pushed = remote.advance("feature", "more.txt", "more\n")
    pr = await api.getitem(f"{PULLS}/1")
    assert pr["head"]["sha"] == pushed and pr["commits"] == 2
    assert gh.pull("acme/demo", 1)["head"]["sha"] == pushed

    remote.branch("clash", {"shared.txt": "clash version\n"})
    git(remote.work, "push", "-q", "origin", "clash:main")  # main now changes shared.txt
    remote.advance("feature", "shared.txt", "feature version\n")
    pr = await api.getitem(f"{PULLS}/1")
    assert pr["mergeable"] is False and pr["mergeable_state"] == "dirty"
    assert pr["base"]["sha"] == remote.tip("main")


async def test_list_pull_requests_with_githubs_filters(
    api: GitHubAPI, gh: FakeGitHub, remote: Remote
) -> None:
    remote.branch("feature", {"feature.txt": "new\n"})
    remote.branch("other", {"other.txt": "x\n"})
    await open_pull(api)
    await open_pull(api, head="other", title="Other")
    await api.patch(f"{PULLS}/2", data={"state": "closed"})

    async def numbers(query: str) -> list[int]:
        return [p["number"] async for p in api.getiter(f"{PULLS}{query}")]

    assert await numbers("") == [1], "open by default"
    assert await numbers("?state=all") == [2, 1], "newest first"
    assert await numbers("?state=all&direction=asc") == [1, 2]
    assert await numbers("?state=closed") == [2]
    assert await numbers("?state=all&head=acme:other") == [2]
    assert await numbers("?state=all&head=other") == [2, 1], "GitHub ignores a head filter without its owner"
    assert await numbers("?state=all&base=other") == []
    listed = [p async for p in api.getiter(PULLS)][0]
    assert "merged" not in listed and "mergeable" not in listed, "the list has the simple form"
    assert listed["merged_at"] is None and listed["head"]["label"] == "acme:feature"

    for n in range(3, 6):
        remote.branch(f"b{n}", {f"b{n}.txt": "x\n"})
        await open_pull(api, head=f"b{n}", title=f"B{n}")
    assert await numbers("?per_page=2") == [5, 4, 3, 1], "pages follow the Link header"


# -- merges ------------------------------------------------------------------------------------------


def subject(bare: Path, sha: str) -> str:
    return git(bare, "log", "-1", "--format=%s", sha)


def parents(bare: Path, sha: str) -> list[str]:
    return git(bare, "log", "-1", "--format=%P", sha).split()


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
async def test_each_merge_method_lands_its_commits(
    method: str, api: GitHubAPI, gh: FakeGitHub, remote: Remote
) -> None:
    head = remote.branch("feature", {"a.txt": "a\n", "b.txt": "b\n"}, author="Alice <alice@example.com>")
    originals = git(
        remote.bare, "log", "--reverse", "--format=%s|%an <%ae>|%at", "main..feature"
    ).splitlines()
    base = remote.advance("main", "elsewhere.txt", "from main\n")
    await open_pull(api)

    answer = await api.put(f"{PULLS}/1/merge", data={"merge_method": method, "sha": head})
    new = remote.tip("main")
    assert answer == {"sha": new, "merged": True, "message": "Pull Request successfully merged"}
    assert git(remote.bare, "ls-tree", "--name-only", new).split() == [
        "README.md",
        "a.txt",
        "b.txt",
        "elsewhere.txt",
        "shared.txt",
    ]
    assert git(remote.bare, "log", "-1", "--format=%cn <%ce>", new) == "GitHub <noreply@github.com>"
    if method == "merge":
        assert parents(remote.bare, new) == [base, head]
        assert subject(remote.bare, new) == "Merge pull request #1 from acme/feature"
        assert git(remote.bare, "log", "-1", "--format=%b", new) == "Add feature"
        assert git(remote.bare, "log", "-1", "--format=%an <%ae>", new) == "GitHub <noreply@github.com>"
    elif method == "squash":
        assert parents(remote.bare, new) == [base]
        assert subject(remote.bare, new) == "Add feature (#1)"
        assert git(remote.bare, "log", "-1", "--format=%b", new) == "* add a.txt\n* add b.txt"
    else:
        replayed = git(
            remote.bare, "log", "--reverse", "--format=%s|%an <%ae>|%at", f"{base}..{new}"
        ).splitlines()
        assert replayed == originals, "each commit replayed with its author, date and message"
        assert parents(remote.bare, git(remote.bare, "rev-parse", f"{new}~1")) == [base]
        assert new != head and git(remote.bare, "rev-list", "--merges", f"{base}..{new}") == ""

    pr = await api.getitem(f"{PULLS}/1")
    assert (pr["state"], pr["merged"], pr["merge_commit_sha"]) == ("closed", True, new)
    assert pr["merged_by"]["login"] == "superset-bot" and pr["merged_at"] and pr["closed_at"]
    assert pr["head"]["sha"] == head and remote.has("feature"), (
        "GitHub keeps the branch unless told to delete it"
    )
    await api.getitem(f"{PULLS}/1/merge")  # 204: merged


async def test_merges_github_refuses(
    api: GitHubAPI, gh: FakeGitHub, remote: Remote, session: aiohttp.ClientSession
) -> None:
    remote.branch("clash", {"shared.txt": "feature version\n"})
    remote.branch("fine", {"fine.txt": "fine\n"})
    remote.branch("wip", {"wip.txt": "wip\n"})
    remote.advance("main", "shared.txt", "main version\n")
    await open_pull(api, head="clash", title="Clash")
    await open_pull(api, head="fine", title="Fine")
    await open_pull(api, head="wip", title="Wip", draft=True)
    main = remote.tip("main")

    async def merge(number: int, **body: Any) -> tuple[int, str]:
        status, answer, _ = await call(session, gh, "PUT", f"{PULLS}/{number}/merge", body)
        return status, answer["message"]

    for method in ("merge", "squash", "rebase"):
        assert await merge(1, merge_method=method) == (405, "Pull Request is not mergeable"), method
    assert await merge(2, sha="0" * 40) == (409, "Head branch was modified. Review and try the merge again.")
    assert await merge(2, merge_method="fast-forward") == (
        422,
        "Invalid request.\n\nFor 'properties/merge_method', \"fast-forward\" is not one of "
        '["merge", "squash", "rebase"].',
    )
    assert await merge(3) == (405, "Pull Request is still a draft")
    gh.repo("acme/demo").allow_squash_merge = False
    assert await merge(2, merge_method="squash") == (405, "Squash merges are not allowed on this repository.")
    assert (await api.getitem("/repos/acme/demo"))["allow_squash_merge"] is False
    assert remote.tip("main") == main, "nothing refused moved the base"
    with pytest.raises(gidgethub.BadRequest) as info:
        await api.put(f"{PULLS}/1/merge", data={"merge_method": "merge"})
    assert info.value.status_code == 405

    await api.put(f"{PULLS}/2/merge", data={"merge_method": "rebase", "sha": remote.tip("fine")})
    assert await merge(2) == (405, "Pull Request is not mergeable"), "merged already"
    with pytest.raises(gidgethub.BadRequest) as not_merged:
        await api.getitem(f"{PULLS}/1/merge")
    assert not_merged.value.status_code == 404


async def test_merged_and_closed_on_the_website(api: GitHubAPI, gh: FakeGitHub, remote: Remote) -> None:
    remote.branch("feature", {"feature.txt": "new\n"})
    remote.branch("other", {"other.txt": "x\n"})
    await open_pull(api)
    await open_pull(api, head="other", title="Other")

    new = await gh.merge_on_website("acme/demo", 1, by="octocat", method="squash")
    assert remote.tip("main") == new and parents(remote.bare, new) == [git(remote.work, "rev-parse", "main")]
    pr = await api.getitem(f"{PULLS}/1")
    assert pr["merged"] is True and pr["merged_by"]["login"] == "octocat" and pr["merge_commit_sha"] == new
    with pytest.raises(ApiError) as again:
        await gh.merge_on_website("acme/demo", 1)
    assert again.value.status == 405

    gh.close_on_website("acme/demo", 2, by="octocat")
    pr = await api.getitem(f"{PULLS}/2")
    assert pr["state"] == "closed" and pr["merged"] is False and pr["closed_at"]
    assert [(e["event"], e["number"], e["actor"]) for e in gh.timeline] == [
        ("opened", 1, "superset-bot"),
        ("opened", 2, "superset-bot"),
        ("merged", 1, "octocat"),
        ("closed", 2, "octocat"),
    ]


async def test_a_head_pushed_into_its_base_by_hand_is_merged(api: GitHubAPI, remote: Remote) -> None:
    head = remote.branch("feature", {"feature.txt": "new\n"})
    await open_pull(api)
    git(remote.work, "push", "-q", "origin", "feature:main")
    pr = await api.getitem(f"{PULLS}/1")
    assert (pr["state"], pr["merged"], pr["merge_commit_sha"]) == ("closed", True, head)


async def test_close_reopen_and_delete_the_branch(
    api: GitHubAPI, gh: FakeGitHub, remote: Remote, session: aiohttp.ClientSession
) -> None:
    remote.branch("task/feature-1", {"feature.txt": "new\n"})
    await open_pull(api, head="task/feature-1")
    closed = await api.patch(f"{PULLS}/1", data={"state": "closed", "title": "Renamed"})
    assert (closed["state"], closed["title"], closed["merged"]) == ("closed", "Renamed", False)
    assert closed["closed_at"] is not None
    reopened = await api.patch(f"{PULLS}/1", data={"state": "open"})
    assert reopened["state"] == "open" and reopened["closed_at"] is None

    await api.delete("/repos/acme/demo/git/refs/heads/task/feature-1")
    assert not remote.has("task/feature-1")
    pr = await api.getitem(f"{PULLS}/1")
    assert pr["state"] == "closed", "deleting the head branch closes its pull request"
    status, body, _ = await call(session, gh, "DELETE", "/repos/acme/demo/git/refs/heads/task/feature-1")
    assert (status, body["message"]) == (422, "Reference does not exist")
    status, body, _ = await call(session, gh, "PATCH", f"{PULLS}/1", {"state": "open"})
    assert status == 422, "no branch, no reopening"
    status, body, _ = await call(session, gh, "PATCH", f"{PULLS}/1", {"state": "merged"})
    assert status == 422


# -- checks and statuses -----------------------------------------------------------------------------


async def test_check_runs_for_a_ref(
    api: GitHubAPI, gh: FakeGitHub, remote: Remote, session: aiohttp.ClientSession
) -> None:
    sha = remote.tip("main")
    gh.set_check_run("acme/demo", sha, "build", "in_progress")
    gh.set_check_run(
        "acme/demo",
        sha,
        "lint",
        "completed",
        "failure",
        title="2 problems",
        summary="see below",
        text="line 3",
    )
    gh.set_check_run("acme/demo", sha, "build", "completed", "success")
    with pytest.raises(ValueError):
        gh.set_check_run("acme/demo", sha, "x", "completed")
    with pytest.raises(ValueError):
        gh.set_check_run("acme/demo", "main", "x", "queued")

    by_branch = await api.getitem("/repos/acme/demo/commits/main/check-runs")
    assert by_branch == await api.getitem(f"/repos/acme/demo/commits/{sha}/check-runs")
    assert by_branch["total_count"] == 2
    build, lint = by_branch["check_runs"]
    assert (build["name"], build["status"], build["conclusion"], build["head_sha"]) == (
        "build",
        "completed",
        "success",
        sha,
    )
    assert build["started_at"] and build["completed_at"] and build["app"]["slug"] == "github-actions"
    assert build["html_url"].startswith(gh.web_url) and build["details_url"]
    assert lint["output"]["title"] == "2 problems" and lint["output"]["summary"] == "see below"
    assert lint["output"]["text"] == "line 3" and lint["conclusion"] == "failure"
    filtered = await api.getitem("/repos/acme/demo/commits/main/check-runs?check_name=lint")
    assert [r["name"] for r in filtered["check_runs"]] == ["lint"] and filtered["total_count"] == 1
    status, body, _ = await call(session, gh, "GET", "/repos/acme/demo/commits/nope/check-runs")
    assert (status, body["message"]) == (422, "No commit found for SHA: nope")
    other = remote.branch("feature", {"f.txt": "f\n"})
    assert await api.getitem("/repos/acme/demo/commits/feature/check-runs") == {
        "total_count": 0,
        "check_runs": [],
    }
    assert other != sha


@pytest.mark.parametrize(
    ("posted", "combined"),
    [
        ([], "pending"),
        ([("ci", "pending")], "pending"),
        ([("ci", "pending"), ("ci", "success")], "success"),
        ([("ci", "success"), ("lint", "pending")], "pending"),
        ([("ci", "success"), ("lint", "failure")], "failure"),
        ([("ci", "error"), ("lint", "pending")], "failure"),
        ([("ci", "failure"), ("ci", "success"), ("lint", "success")], "success"),
    ],
)
async def test_combined_status(
    posted: list[tuple[str, str]], combined: str, api: GitHubAPI, gh: FakeGitHub, remote: Remote
) -> None:
    sha = remote.tip("main")
    for context, state in posted:
        gh.set_status(
            "acme/demo",
            sha,
            context,
            state,
            description=f"{context} {state}",
            target_url=f"https://ci.example/{context}",
        )
    answer = await api.getitem("/repos/acme/demo/commits/main/status")
    assert (answer["state"], answer["sha"]) == (combined, sha)
    latest = {context: state for context, state in posted}
    assert answer["total_count"] == len(latest) == len(answer["statuses"])
    assert {s["context"]: s["state"] for s in answer["statuses"]} == latest
    for s in answer["statuses"]:
        assert s["description"] == f"{s['context']} {s['state']}" and s["target_url"].startswith(
            "https://ci.example/"
        )
        assert s["created_at"].endswith("Z")


# -- conditional requests and the rate limit ---------------------------------------------------------


async def test_an_etag_gets_a_304_that_costs_nothing(gh: FakeGitHub, session: aiohttp.ClientSession) -> None:
    status, body, headers = await call(session, gh, "GET", "/repos/acme/demo")
    etag, used = headers["ETag"], headers["X-RateLimit-Used"]
    assert status == 200 and etag.startswith('W/"')
    for sent in (etag, etag.removeprefix("W/"), f'"other", {etag}'):
        status, body, headers = await call(
            session, gh, "GET", "/repos/acme/demo", headers={"If-None-Match": sent}
        )
        assert (status, body, headers["ETag"]) == (304, None, etag)
        assert headers["X-RateLimit-Used"] == used and headers["X-RateLimit-Remaining"] == str(
            5000 - int(used)
        )
    assert gh.requests[-1].headers["if-none-match"] == f'"other", {etag}' and not gh.requests[-1].counted
    gh.repo("acme/demo").allow_rebase_merge = False
    status, body, headers = await call(
        session, gh, "GET", "/repos/acme/demo", headers={"If-None-Match": etag}
    )
    assert status == 200 and headers["ETag"] != etag and body["allow_rebase_merge"] is False
    assert headers["X-RateLimit-Used"] == str(int(used) + 1)


async def test_gidgethubs_cache_is_answered_with_304s(api: GitHubAPI, gh: FakeGitHub, remote: Remote) -> None:
    remote.branch("feature", {"feature.txt": "new\n"})
    await open_pull(api)
    first = await api.getitem(f"{PULLS}/1")
    used = gh.rate_used
    again = await api.getitem(f"{PULLS}/1")
    assert again == first and gh.rate_used == used
    assert gh.requests[-1].status == 304 and gh.requests[-1].headers["if-none-match"]
    pushed = remote.advance("feature", "more.txt", "more\n")
    assert (await api.getitem(f"{PULLS}/1"))["head"]["sha"] == pushed
    assert gh.requests[-1].status == 200 and gh.rate_used == used + 1


async def test_the_rate_limit_runs_out_and_comes_back(remote: Remote, session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with FakeGitHub.start(token=TOKEN, rate_limit=3, clock=clock) as gh:
        remaining = [(await call(session, gh, "GET", "/user"))[2]["X-RateLimit-Remaining"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        status, body, headers = await call(session, gh, "GET", "/user")
        assert status == 403 and body["message"].startswith("API rate limit exceeded for user ID 1.")
        assert body["documentation_url"].startswith("https://docs.github.com/rest/")
        assert (headers["X-RateLimit-Remaining"], headers["X-RateLimit-Used"]) == ("0", "3")
        assert headers["X-RateLimit-Reset"] == str(math.ceil(clock.now + 3600))
        api = GitHubAPI(session, "superset-bot", oauth_token=TOKEN, base_url=gh.url)
        with pytest.raises(gidgethub.RateLimitExceeded) as info:
            await api.getitem("/user")
        assert info.value.rate_limit.remaining == 0 and info.value.rate_limit.limit == 3

        clock.now += 3600
        assert (await api.getitem("/user"))["login"] == "superset-bot"
        assert api.rate_limit is not None and api.rate_limit.remaining == 2

        gh.exhaust_rate_limit(reset_in=30)
        status, _, headers = await call(session, gh, "GET", "/user")
        assert status == 403 and headers["X-RateLimit-Reset"] == str(math.ceil(clock.now + 30))
        clock.now += 31
        status, _, headers = await call(session, gh, "GET", "/user")
        assert status == 200 and headers["X-RateLimit-Remaining"] == "2"


# -- GitHub Enterprise, injected faults --------------------------------------------------------------


async def test_a_github_enterprise_prefix(remote: Remote, session: aiohttp.ClientSession) -> None:
    remote.branch("feature", {"feature.txt": "new\n"})
    async with FakeGitHub.start(token=TOKEN, prefix="/api/v3") as gh:
        gh.add_repo("acme/demo", remote.bare)
        assert gh.url == gh.web_url + "/api/v3"
        api = GitHubAPI(session, "superset-bot", oauth_token=TOKEN, base_url=gh.url)
        assert (await api.getitem("/user"))["login"] == "superset-bot"
        pr = await open_pull(api)
        assert pr["url"] == f"{gh.web_url}/api/v3/repos/acme/demo/pulls/1"
        assert pr["html_url"] == f"{gh.web_url}/acme/demo/pull/1"
        merged = await api.put(f"{PULLS}/1/merge", data={})
        assert merged["sha"] == remote.tip("main")
        async with session.get(gh.web_url + "/user", headers={"Authorization": f"token {TOKEN}"}) as resp:
            assert resp.status == 404
        assert [r.path for r in gh.requests] == ["/user", PULLS, f"{PULLS}/1/merge", "/user"]


async def test_injected_faults(
    api: GitHubAPI, gh: FakeGitHub, remote: Remote, session: aiohttp.ClientSession
) -> None:
    remote.branch("feature", {"feature.txt": "new\n"})
    gh.fail_next("GET", r"^/user$", 502, times=2)
    for _ in range(2):
        with pytest.raises(gidgethub.GitHubBroken):
            await api.getitem("/user")
    assert (await api.getitem("/user"))["login"] == "superset-bot"

    gh.fail_next("POST", r"/pulls$", 0)
    with pytest.raises(aiohttp.ClientError):
        await open_pull(api)
    assert gh.repo("acme/demo").pulls == {} and gh.requests[-1].status == 0
    assert (await open_pull(api))["number"] == 1

    gh.fail_next("*", r"/pulls/1$", 500, body={"message": "Server Error"})
    status, body, _ = await call(session, gh, "GET", f"{PULLS}/1")
    assert (status, body) == (500, {"message": "Server Error"})
    assert gh.rate_used == 2, "faults do not count"
