"""A loopback fake of GitHub's REST API for tests: an aiohttp server on 127.0.0.1 in the test's own
event loop, backed by real bare git repositories that are also the bot's remotes.

It answers the way api.github.com does where a client can tell: token auth (401), the primary rate
limit ("core", 403 once used up, its `X-RateLimit-*` headers on every answer), ETags with 304s that
do not count against the limit, pull requests whose head follows pushes to the bare repo and whose
merges (merge, squash, rebase) are carried out for real with git plumbing and a compare-and-swap of
the base ref, check runs and combined commit statuses, and GitHub's error bodies (404, 405, 409,
422). Test hooks act as people on github.com would (`merge_on_website`, `close_on_website`) or as
CI does (`set_check_run`, `set_status`), and `fail_next` injects faults.

    async with FakeGitHub.start(token="ghp_test") as gh:
        gh.add_repo("acme/demo", bare_repo, default_branch="main")
        api = gidgethub.aiohttp.GitHubAPI(session, "superset-bot", oauth_token="ghp_test", base_url=gh.url)

Every git command runs through `asyncio.create_subprocess_exec`: nothing blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import math
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
PULLS_DOCS = "https://docs.github.com/rest/pulls/pulls"
MERGE_DOCS = f"{PULLS_DOCS}#merge-a-pull-request"
REFS_DOCS = "https://docs.github.com/rest/git/refs"

# who GitHub's own merge commits are by
GITHUB_IDENT = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}

MERGE_METHODS = ("merge", "squash", "rebase")
_NOT_ALLOWED = {
    "merge": "Merge commits are not allowed on this repository.",
    "squash": "Squash merges are not allowed on this repository.",
    "rebase": "Rebase merges are not allowed on this repository.",
}
CHECK_STATUSES = frozenset({"queued", "in_progress", "completed", "waiting", "requested", "pending"})
CHECK_CONCLUSIONS = frozenset(
    {"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required", "stale"}
)
STATUS_STATES = frozenset({"error", "failure", "pending", "success"})
RECORDED_HEADERS = (
    "authorization",
    "if-none-match",
    "if-modified-since",
    "accept",
    "user-agent",
    "content-type",
    "x-github-api-version",
)
# keys of the full pull request object that the list endpoint ("pull-request-simple") leaves out
_FULL_ONLY = (
    "merged",
    "mergeable",
    "rebaseable",
    "mergeable_state",
    "merged_by",
    "comments",
    "review_comments",
    "maintainer_can_modify",
    "commits",
    "additions",
    "deletions",
    "changed_files",
)
_SHA = re.compile(r"[0-9a-f]{40}")
_OWNER_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
WINDOW = 3600.0  # the primary rate limit is per hour


class ApiError(Exception):
    """An answer other than success. Handlers raise it and the server turns it into GitHub's JSON
    error body; the async hooks (`merge_on_website`, ...) let it propagate to the test."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        documentation_url: str = DOCS,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.errors = errors
        self.documentation_url = documentation_url

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = self.documentation_url
        body["status"] = str(self.status)
        return body


def validation_failed(*errors: dict[str, Any], docs: str = PULLS_DOCS) -> ApiError:
    return ApiError(422, "Validation Failed", errors=list(errors), documentation_url=docs)


@dataclass
class RecordedRequest:
    """One request as the fake saw it. `path` is without the API prefix (e.g. "/repos/acme/demo");
    `headers` holds the RECORDED_HEADERS that were sent, names lowercased; `status` is 0 for a
    connection dropped by `fail_next(..., status=0)`."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    counted: bool = False  # whether it used up one request of the rate limit


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int


@dataclass
class FakeRepo:
    """A repository: a bare git repo on disk plus what GitHub keeps beside it. The allow_* flags and
    `delete_branch_on_merge` are the repository settings of the same names; tests may flip them."""

    owner: str
    name: str
    path: Path
    default_branch: str
    id: int
    allow_merge_commit: bool = True
    allow_squash_merge: bool = True
    allow_rebase_merge: bool = True
    delete_branch_on_merge: bool = False
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> runs
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> statuses, oldest first
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _Call:
    """What a route handler gets: the request, its API path's named groups, query and JSON body."""

    request: web.Request
    params: dict[str, str]
    query: Mapping[str, str]
    body: Any
    api_path: str


_Answer = tuple[int, Any, dict[str, str]]  # status, JSON payload (None: no body), extra headers


# -- git ----------------------------------------------------------------------------------------------


async def run_git(
    repo: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Run git in `repo` without blocking the loop: (returncode, stdout, stderr). A cancelled call
    kills its git process."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=repo,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env} if env else None,
    )
    try:
        out, err = await proc.communicate(stdin)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def git_out(
    repo: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> str:
    """stdout of a git command that must succeed, stripped."""
    code, out, err = await run_git(repo, *args, stdin=stdin, env=env)
    if code != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({code}): {err.strip()}")
    return out.strip()


async def rev(repo: Path, name: str) -> str | None:
    """The commit `name` (a full ref name or sha) points at, or None."""
    code, out, _ = await run_git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    return out.strip() if code == 0 else None


async def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    code, _, _ = await run_git(repo, "merge-base", "--is-ancestor", older, newer)
    return code == 0


async def merge_tree(repo: Path, ours: str, theirs: str, *extra: str) -> str | None:
    """The tree of merging `theirs` into `ours` (`git merge-tree --write-tree`), None on conflicts or
    when the two have no history in common."""
    code, out, _ = await run_git(repo, "merge-tree", "--write-tree", *extra, ours, theirs)
    return out.split("\n", 1)[0].strip() if code == 0 else None


_merge_base_option: bool | None = None


async def _has_merge_base_option(repo: Path) -> bool:
    """Whether this git's merge-tree takes --merge-base (git 2.40 and later)."""
    global _merge_base_option
    if _merge_base_option is None:
        version = await git_out(repo, "version")
        numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
        _merge_base_option = tuple(numbers) >= (2, 40)
    return _merge_base_option


async def pick_tree(repo: Path, onto: str, commit: str) -> str | None:
    """The tree of cherry-picking `commit` onto `onto` (a three-way merge with `commit^` as the base),
    None on conflicts."""
    if await _has_merge_base_option(repo):
        return await merge_tree(repo, onto, commit, f"--merge-base={commit}^")
    # an older git: a stand-in commit with onto's tree and commit^ as its parent makes commit^ the merge base
    stand_in = await git_out(repo, "commit-tree", f"{onto}^{{tree}}", "-p", f"{commit}^", "-m", "stand-in")
    return await merge_tree(repo, stand_in, commit)


async def commit_tree(repo: Path, tree: str, parents: list[str], message: str, env: Mapping[str, str]) -> str:
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return await git_out(repo, *args, "-F", "-", stdin=message.encode(), env=env)


async def read_commit(repo: Path, sha: str) -> tuple[dict[str, str], str]:
    """A commit's author as GIT_AUTHOR_* variables, and its message exactly as stored."""
    raw = await git_out(repo, "cat-file", "commit", sha)
    head, _, message = raw.partition("\n\n")
    author = next(line for line in head.splitlines() if line.startswith("author "))
    found = re.fullmatch(r"author (.*) <(.*)> (\d+) ([+-]\d{4})", author)
    assert found, author
    name, email, stamp, zone = found.groups()
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": f"@{stamp} {zone}"}
    return env, message + "\n"


# -- helpers ------------------------------------------------------------------------------------------


def iso(epoch: float) -> str:
    """GitHub's timestamp format: 2011-01-26T19:01:12Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_etag(data: bytes) -> str:
    return f'W/"{hashlib.sha256(data).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of If-None-Match (a list, or "*") against `etag`."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True

    def opaque(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag

    return any(opaque(tag) == opaque(etag) for tag in if_none_match.split(","))


def _check_types(body: Mapping[str, Any], types: Mapping[str, tuple[type, ...]]) -> None:
    """422 "Invalid request" for a field of the wrong JSON type, as GitHub's schema check answers."""
    names = {str: "string", bool: "boolean", int: "integer", type(None): "null"}
    for key, allowed in types.items():
        if key not in body:
            continue
        value = body[key]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            wanted = "/".join(names.get(t, t.__name__) for t in allowed)
            raise ApiError(
                422, f"Invalid request.\n\nFor 'properties/{key}', {json.dumps(value)} is not a {wanted}."
            )


def _body_object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "Problems parsing JSON")
    return body


# -- the server ---------------------------------------------------------------------------------------


class FakeGitHub:
    """GitHub's REST API on 127.0.0.1:<ephemeral port> + `prefix`. Use `FakeGitHub.start(...)` (an
    async context manager) or `await open()` / `await close()`."""

    def __init__(
        self,
        *,
        token: str = "ghp_test_token",
        prefix: str = "",
        scopes: str | None = "repo",
        rate_limit: int = 5000,
        login: str = "superset-bot",
        user_id: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix must start with / and not end with one: {prefix!r}")
        self.token = token
        self.prefix = prefix
        self.scopes = scopes  # X-OAuth-Scopes; None: a fine-grained token (no header, no scope check)
        self.rate_limit = rate_limit
        self.login = login
        self.user_id = user_id
        self.clock = clock
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[RecordedRequest] = []
        self.timeline: list[dict[str, Any]] = []  # what happened to pull requests, with who did it
        self.rate_used = 0
        self.rate_reset = clock() + WINDOW
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1001)
        self._request_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.web_url = ""
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, **kwargs: Any) -> AsyncIterator[FakeGitHub]:
        """`async with FakeGitHub.start(token=..., prefix=...) as gh:` serves until the block ends."""
        gh = cls(**kwargs)
        await gh.open()
        try:
            yield gh
        finally:
            await gh.close()

    async def open(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.web_url = f"http://127.0.0.1:{port}"
        self.url = self.web_url + self.prefix

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- test hooks -------------------------------------------------------------------------------------

    def add_repo(
        self,
        full_name: str,
        path: Path | str,
        *,
        default_branch: str = "main",
        allow_merge_commit: bool = True,
        allow_squash_merge: bool = True,
        allow_rebase_merge: bool = True,
        delete_branch_on_merge: bool = False,
    ) -> FakeRepo:
        """Serve the bare git repo at `path` as `full_name` ("owner/name")."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"not owner/name: {full_name!r}")
        repo = FakeRepo(
            owner=owner,
            name=name,
            path=Path(path),
            default_branch=default_branch,
            id=next(self._ids),
            allow_merge_commit=allow_merge_commit,
            allow_squash_merge=allow_squash_merge,
            allow_rebase_merge=allow_rebase_merge,
            delete_branch_on_merge=delete_branch_on_merge,
        )
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> FakeRepo:
        return self.repos[full_name.lower()]

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        """A copy of the stored pull request object: head.sha, base.sha and mergeable as of the last
        time the API served it (or a merge or close changed it)."""
        return copy.deepcopy(self.repo(repo).pulls[number])

    async def fetch_pull(self, repo: str, number: int) -> dict[str, Any]:
        """The pull request as `GET .../pulls/{number}` would answer now (not recorded, not counted)."""
        fake = self.repo(repo)
        pr = fake.pulls[number]
        async with fake.lock:  # not halfway through a merge (its base moved, its PR not yet marked)
            await self._refresh(fake, pr, full=True)
        return copy.deepcopy(pr)

    def set_check_run(
        self,
        repo: str,
        sha: str,
        name: str,
        status: str,
        conclusion: str | None = None,
        *,
        title: str = "",
        summary: str = "",
        text: str = "",
        details_url: str | None = None,
    ) -> dict[str, Any]:
        """Create the check run `name` on commit `sha` (40 hex digits), or update the one of that name.
        A conclusion makes the run completed, as on GitHub; a completed run needs one."""
        if not _SHA.fullmatch(sha):
            raise ValueError(f"check runs belong to a full commit sha, not {sha!r}")
        if status not in CHECK_STATUSES:
            raise ValueError(f"unknown check run status {status!r}")
        if conclusion is not None:
            if conclusion not in CHECK_CONCLUSIONS:
                raise ValueError(f"unknown check run conclusion {conclusion!r}")
            status = "completed"
        elif status == "completed":
            raise ValueError("a completed check run needs a conclusion")
        fake = self.repo(repo)
        runs = fake.check_runs.setdefault(sha, [])
        run = next((r for r in runs if r["name"] == name), None)
        now = iso(self.clock())
        if run is None:
            run_id = next(self._ids)
            run = {
                "id": run_id,
                "node_id": f"CR_{run_id}",
                "head_sha": sha,
                "external_id": "",
                "url": f"{self.url}/repos/{fake.full_name}/check-runs/{run_id}",
                "html_url": f"{self.web_url}/{fake.full_name}/runs/{run_id}",
                "details_url": f"{self.web_url}/{fake.full_name}/actions/runs/{run_id}/job/{run_id}",
                "name": name,
                "started_at": now,
                "check_suite": {"id": next(self._ids)},
                "app": {
                    "id": 15368,
                    "slug": "github-actions",
                    "name": "GitHub Actions",
                    "owner": {"login": "github"},
                },
            }
            runs.append(run)
        run["status"] = status
        run["conclusion"] = conclusion
        run["completed_at"] = now if status == "completed" else None
        if details_url is not None:
            run["details_url"] = details_url
        run["output"] = {
            "title": title or None,
            "summary": summary or None,
            "text": text or None,
            "annotations_count": 0,
            "annotations_url": f"{run['url']}/annotations",
        }
        return copy.deepcopy(run)

    def set_status(
        self, repo: str, sha: str, context: str, state: str, description: str = "", target_url: str = ""
    ) -> dict[str, Any]:
        """Post a commit status for `sha` (40 hex digits); the newest per context is the one that counts."""
        if not _SHA.fullmatch(sha):
            raise ValueError(f"statuses belong to a full commit sha, not {sha!r}")
        if state not in STATUS_STATES:
            raise ValueError(f"unknown status state {state!r}")
        fake = self.repo(repo)
        status_id = next(self._ids)
        now = iso(self.clock())
        status = {
            "url": f"{self.url}/repos/{fake.full_name}/statuses/{sha}",
            "avatar_url": None,
            "id": status_id,
            "node_id": f"SC_{status_id}",
            "state": state,
            "description": description or None,
            "target_url": target_url or None,
            "context": context,
            "created_at": now,
            "updated_at": now,
            "creator": self._user(self.login, self.user_id),
        }
        fake.statuses.setdefault(sha, []).append(status)
        return copy.deepcopy(status)

    async def merge_on_website(
        self, repo: str, number: int, by: str = "octocat", method: str = "merge"
    ) -> str:
        """Someone presses the merge button on github.com: the API's merge, done by `by`. Returns the
        new tip of the base branch; raises ApiError as the API would answer."""
        return await self._merge(self.repo(repo), number, method=method, by=by)

    def close_on_website(self, repo: str, number: int, by: str = "octocat") -> None:
        """Someone closes the pull request on github.com."""
        fake = self.repo(repo)
        pr = fake.pulls[number]
        if pr["state"] == "open":
            self._close(fake, pr, by)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: Any = None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next `times` requests of `method` ("*" for any) whose path (without the prefix) matches
        `path_regex` (re.search) get `status` and `body` (a dict is sent as JSON, a str as text/html,
        None as {"message": <reason>}) instead of an answer; status 0 drops the connection unanswered.
        They change nothing and do not count against the rate limit."""
        self._faults.append(
            _Fault(method.upper(), re.compile(path_regex), status, body, dict(headers or {}), times)
        )

    def exhaust_rate_limit(self, reset_in: float = 60.0) -> None:
        """Use up the rate limit; it comes back `reset_in` seconds from now (by `clock`)."""
        self.rate_used = self.rate_limit
        self.rate_reset = self.clock() + reset_in

    @property
    def rate_remaining(self) -> int:
        self._roll_window()
        return max(0, self.rate_limit - self.rate_used)

    # -- request handling -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        inside = path == self.prefix or path.startswith(self.prefix + "/") or not self.prefix
        api_path = (path[len(self.prefix) :] or "/") if inside else path
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
            parse_error = False
        except ValueError:
            body, parse_error = raw.decode(errors="replace"), True
        headers = {k: request.headers[k] for k in RECORDED_HEADERS if k in request.headers}
        record = RecordedRequest(request.method, api_path, request.query_string, headers, body)
        self.requests.append(record)

        fault = self._take_fault(request.method, api_path)
        if fault is not None:
            if fault.status == 0:
                if request.transport is not None:
                    request.transport.abort()  # no answer: the client's connection just closes
                return web.Response()
            response = self._fault_response(fault)
        else:
            response = await self._answer(request, api_path if inside else None, body, parse_error, record)
        record.status = response.status
        return response

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.method in ("*", method) and fault.pattern.search(path):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: _Fault) -> web.Response:
        headers = {"X-GitHub-Request-Id": self._request_id(), **fault.headers}
        if isinstance(fault.body, str):
            return web.Response(
                status=fault.status, text=fault.body, content_type="text/html", headers=headers
            )
        body = {"message": _reason(fault.status)} if fault.body is None else fault.body
        headers["Content-Type"] = "application/json; charset=utf-8"
        return web.Response(status=fault.status, body=json.dumps(body).encode(), headers=headers)

    async def _answer(
        self,
        request: web.Request,
        api_path: str | None,
        body: Any,
        parse_error: bool,
        record: RecordedRequest,
    ) -> web.Response:
        if api_path is None:  # outside the API prefix: GitHub's web side, which the fake does not serve
            return self._respond(request, 404, ApiError(404, "Not Found").body(), {}, count=False)
        token = self._bearer(request.headers.get("Authorization"))
        if token is None:
            return self._respond(
                request, 401, ApiError(401, "Requires authentication").body(), {}, count=False
            )
        if token != self.token:
            return self._respond(request, 401, ApiError(401, "Bad credentials").body(), {}, count=False)
        self._roll_window()
        if self.rate_used >= self.rate_limit:
            message = (
                f"API rate limit exceeded for user ID {self.user_id}. "
                "If you reach out to GitHub Support for help, "
                f"please include the request ID {self._request_id()} and timestamp {iso(self.clock())}."
            )
            error = ApiError(403, message, documentation_url=RATE_LIMIT_DOCS)
            return self._respond(request, 403, error.body(), {}, count=False)
        try:
            if parse_error:
                raise ApiError(400, "Problems parsing JSON")
            status, payload, extra = await self._dispatch(request, api_path, body)
        except ApiError as error:
            status, payload, extra = error.status, error.body(), {}
        count = api_path != "/rate_limit"
        response = self._respond(request, status, payload, extra, count=count)
        record.counted = count and response.status != 304
        return response

    @staticmethod
    def _bearer(header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        return credentials.strip() if scheme.lower() in ("token", "bearer") else ""

    def _roll_window(self) -> None:
        now = self.clock()
        if now >= self.rate_reset:
            self.rate_used = 0
            self.rate_reset = now + WINDOW

    def _request_id(self) -> str:
        return f"F4KE:{next(self._request_ids):06X}:0:0:0"

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - self.rate_used)),
            "X-RateLimit-Used": str(min(self.rate_used, self.rate_limit)),
            "X-RateLimit-Reset": str(math.ceil(self.rate_reset)),
            "X-RateLimit-Resource": "core",
        }

    def _respond(
        self, request: web.Request, status: int, payload: Any, extra: Mapping[str, str], *, count: bool
    ) -> web.Response:
        """The answer with GitHub's headers. A GET answered 200 carries an ETag; a request whose
        If-None-Match matches it gets 304 without a body, and only answers other than 304 count."""
        data = b"" if payload is None else json.dumps(payload).encode()
        headers = {
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Request-Id": self._request_id(),
            **extra,
        }
        if self.scopes is not None and status != 401:
            headers["X-OAuth-Scopes"] = self.scopes
            headers["X-Accepted-OAuth-Scopes"] = (
                "repo" if request.path.startswith(f"{self.prefix}/repos/") else ""
            )
        if request.method == "GET" and status == 200:
            etag = make_etag(data)
            headers["ETag"] = etag
            headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
            headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
            if etag_matches(request.headers.get("If-None-Match"), etag):
                return web.Response(status=304, headers={**headers, **self._rate_headers()})
        if count:
            self.rate_used += 1
        headers.update(self._rate_headers())
        if payload is None:
            return web.Response(status=status, headers=headers)
        headers["Content-Type"] = "application/json; charset=utf-8"
        return web.Response(status=status, body=data, headers=headers)

    # -- routing ----------------------------------------------------------------------------------------

    _ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"/user", "_get_user"),
        ("GET", r"/rate_limit", "_get_rate_limit"),
        ("GET", _OWNER_REPO, "_get_repo"),
        ("GET", _OWNER_REPO + r"/pulls", "_list_pulls"),
        ("POST", _OWNER_REPO + r"/pulls", "_create_pull"),
        ("GET", _OWNER_REPO + r"/pulls/(?P<number>\d+)", "_get_pull"),
        ("PATCH", _OWNER_REPO + r"/pulls/(?P<number>\d+)", "_update_pull"),
        ("GET", _OWNER_REPO + r"/pulls/(?P<number>\d+)/merge", "_get_merged"),
        ("GET", _OWNER_REPO + r"/issues/(?P<number>\d+)", "_get_issue"),
        ("PUT", _OWNER_REPO + r"/pulls/(?P<number>\d+)/merge", "_merge_pull"),
        ("GET", _OWNER_REPO + r"/git/ref/(?P<ref>.+)", "_get_ref"),
        ("DELETE", _OWNER_REPO + r"/git/refs/(?P<ref>.+)", "_delete_ref"),
        ("GET", _OWNER_REPO + r"/commits/(?P<ref>.+)/check-runs", "_list_check_runs"),
        ("GET", _OWNER_REPO + r"/commits/(?P<ref>.+)/status", "_get_combined_status"),
    )

    async def _dispatch(self, request: web.Request, api_path: str, body: Any) -> _Answer:
        for method, pattern, name in self._ROUTES:
            found = re.fullmatch(pattern, api_path)
            if found and method == request.method:
                if "owner" in found.groupdict() and not self._has_scope("repo"):
                    raise ApiError(
                        404, "Not Found"
                    )  # a private repository is invisible without the repo scope
                call = _Call(request, found.groupdict(), request.query, body, api_path)
                handler: Callable[[_Call], Any] = getattr(self, name)
                answer: _Answer = await handler(call)
                return answer
        raise ApiError(404, "Not Found")

    def _has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in (s.strip() for s in self.scopes.split(","))

    def _repo_of(self, call: _Call) -> FakeRepo:
        repo = self.repos.get(f"{call.params['owner']}/{call.params['repo']}".lower())
        if repo is None:
            raise ApiError(404, "Not Found", documentation_url=f"{DOCS}/repos/repos#get-a-repository")
        return repo

    def _pull_of(self, repo: FakeRepo, number: int) -> dict[str, Any]:
        pr = repo.pulls.get(number)
        if pr is None:
            raise ApiError(404, "Not Found", documentation_url=f"{PULLS_DOCS}#get-a-pull-request")
        return pr

    # -- objects ----------------------------------------------------------------------------------------

    def _user(self, login: str, user_id: int | None = None) -> dict[str, Any]:
        uid = user_id if user_id is not None else (self.user_id if login == self.login else 583231)
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_{uid}",
            "type": "User",
            "site_admin": False,
            "url": f"{self.url}/users/{login}",
            "html_url": f"{self.web_url}/{login}",
        }

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user(repo.owner, 2),
            "private": True,
            "html_url": f"{self.web_url}/{repo.full_name}",
            "url": f"{self.url}/repos/{repo.full_name}",
            "clone_url": str(repo.path),
            "default_branch": repo.default_branch,
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
            "allow_merge_commit": repo.allow_merge_commit,
            "allow_squash_merge": repo.allow_squash_merge,
            "allow_rebase_merge": repo.allow_rebase_merge,
            "delete_branch_on_merge": repo.delete_branch_on_merge,
            "archived": False,
            "disabled": False,
            "visibility": "private",
        }

    def _branch_json(self, repo: FakeRepo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self._user(repo.owner, 2),
            "repo": self._repo_json(repo),
        }

    def _now(self) -> str:
        return iso(self.clock())

    def _event(self, repo: FakeRepo, number: int, event: str, actor: str, **extra: Any) -> None:
        self.timeline.append(
            {
                "event": event,
                "repo": repo.full_name,
                "number": number,
                "actor": actor,
                "at": self._now(),
                **extra,
            }
        )

    # -- pull request state -----------------------------------------------------------------------------

    async def _tip(self, repo: FakeRepo, branch: str) -> str | None:
        return await rev(repo.path, f"refs/heads/{branch}")

    async def _refresh(self, repo: FakeRepo, pr: dict[str, Any], *, full: bool) -> None:
        """Bring an open pull request up to date with the bare repo: its head and base follow their
        branches; a deleted branch closes it; a head that is already in its base marks it merged (as
        GitHub does when the commits are pushed to the base by hand). `full` also works out
        mergeable and the commit and diff counts, as the single-pull endpoint does."""
        if pr["state"] != "open":
            return
        head = await self._tip(repo, pr["head"]["ref"])
        base = await self._tip(repo, pr["base"]["ref"])
        if head is None or base is None:
            self._close(repo, pr, self.login)
            return
        if (head, base) != (pr["head"]["sha"], pr["base"]["sha"]):
            pr["head"]["sha"], pr["base"]["sha"] = head, base
            pr["statuses_url"] = f"{self.url}/repos/{repo.full_name}/statuses/{head}"
            pr["updated_at"] = self._now()
        if await is_ancestor(repo.path, head, base):
            self._mark_merged(repo, pr, merge_commit=head, by=self.login)
            return
        if not full:
            return
        clean = await merge_tree(repo.path, base, head) is not None
        pr["mergeable"] = pr["rebaseable"] = clean
        pr["mergeable_state"] = "draft" if pr["draft"] else ("clean" if clean else "dirty")
        pr["commits"] = int(await git_out(repo.path, "rev-list", "--count", f"{base}..{head}"))
        additions = deletions = files = 0
        for line in (await git_out(repo.path, "diff", "--numstat", f"{base}...{head}")).splitlines():
            added, deleted, _ = line.split("\t", 2)
            additions += int(added) if added.isdigit() else 0
            deletions += int(deleted) if deleted.isdigit() else 0
            files += 1
        pr["additions"], pr["deletions"], pr["changed_files"] = additions, deletions, files

    def _close(self, repo: FakeRepo, pr: dict[str, Any], by: str) -> None:
        now = self._now()
        pr["state"] = "closed"
        pr["closed_at"] = pr["updated_at"] = now
        pr["mergeable"] = pr["rebaseable"] = None
        pr["mergeable_state"] = "unknown"
        self._event(repo, pr["number"], "closed", by)

    def _mark_merged(self, repo: FakeRepo, pr: dict[str, Any], *, merge_commit: str, by: str) -> None:
        now = self._now()
        pr.update(
            state="closed",
            merged=True,
            merged_at=now,
            closed_at=now,
            updated_at=now,
            merge_commit_sha=merge_commit,
            merged_by=self._user(by),
            mergeable=None,
            rebaseable=None,
            mergeable_state="unknown",
        )
        self._event(repo, pr["number"], "merged", by, commit_id=merge_commit)

    def _open_duplicate(self, repo: FakeRepo, head: str, base: str, besides: int = 0) -> bool:
        return any(
            p["state"] == "open"
            and p["head"]["ref"] == head
            and p["base"]["ref"] == base
            and p["number"] != besides
            for p in repo.pulls.values()
        )

    # -- merging ----------------------------------------------------------------------------------------

    async def _merge(
        self,
        repo: FakeRepo,
        number: int,
        *,
        method: Any,
        by: str,
        sha: Any = None,
        title: Any = None,
        message: Any = None,
    ) -> str:
        """Merge pull request `number` for real: build the commit(s) in the bare repo, then move the
        base branch with a compare-and-swap. Returns the new base tip."""
        if method not in MERGE_METHODS:
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/merge_method', {json.dumps(method)} is not one of "
                '["merge", "squash", "rebase"].',
                documentation_url=MERGE_DOCS,
            )
        async with repo.lock:
            pr = self._pull_of(repo, number)
            await self._refresh(repo, pr, full=False)
            if pr["state"] != "open":
                raise ApiError(405, "Pull Request is not mergeable", documentation_url=MERGE_DOCS)
            if not getattr(repo, "allow_merge_commit" if method == "merge" else f"allow_{method}_merge"):
                raise ApiError(405, _NOT_ALLOWED[method], documentation_url=MERGE_DOCS)
            if pr["draft"]:
                raise ApiError(405, "Pull Request is still a draft", documentation_url=MERGE_DOCS)
            head, base = pr["head"]["sha"], pr["base"]["sha"]
            if sha is not None and sha != head:
                raise ApiError(
                    409,
                    "Head branch was modified. Review and try the merge again.",
                    documentation_url=MERGE_DOCS,
                )
            new = await self._build_merge(repo, pr, method, base, head, title, message)
            if new is None:
                raise ApiError(405, "Pull Request is not mergeable", documentation_url=MERGE_DOCS)
            code, _, _ = await run_git(repo.path, "update-ref", f"refs/heads/{pr['base']['ref']}", new, base)
            if code != 0:
                raise ApiError(
                    405,
                    "Base branch was modified. Review and try the merge again.",
                    documentation_url=MERGE_DOCS,
                )
            self._mark_merged(repo, pr, merge_commit=new, by=by)
            if repo.delete_branch_on_merge:
                await run_git(repo.path, "update-ref", "-d", f"refs/heads/{pr['head']['ref']}", head)
            return new

    async def _build_merge(
        self, repo: FakeRepo, pr: dict[str, Any], method: str, base: str, head: str, title: Any, message: Any
    ) -> str | None:
        """The commit the base branch moves to, or None on conflicts."""
        if method == "rebase":
            return await self._rebase(repo, base, head)
        tree = await merge_tree(repo.path, base, head)
        if tree is None:
            return None
        if method == "merge":
            subject = title or f"Merge pull request #{pr['number']} from {repo.owner}/{pr['head']['ref']}"
            text = pr["title"] if message is None else message
            return await commit_tree(repo.path, tree, [base, head], f"{subject}\n\n{text}\n", GITHUB_IDENT)
        subject = title or f"{pr['title']} (#{pr['number']})"
        if message is None:
            log = await git_out(repo.path, "log", "--reverse", "--format=* %s", f"{base}..{head}")
            message = log
        return await commit_tree(repo.path, tree, [base], f"{subject}\n\n{message}\n", GITHUB_IDENT)

    async def _rebase(self, repo: FakeRepo, base: str, head: str) -> str | None:
        """Replay head's own non-merge commits onto base one by one, keeping each author and message
        (GitHub commits them); a commit that turns out empty is left out. None on conflicts."""
        listed = await git_out(repo.path, "rev-list", "--reverse", "--no-merges", f"{base}..{head}")
        tip = base
        for commit in listed.split():
            tree = await pick_tree(repo.path, tip, commit)
            if tree is None:
                return None
            if tree == await git_out(repo.path, "rev-parse", f"{tip}^{{tree}}"):
                continue
            author, text = await read_commit(repo.path, commit)
            env = {**GITHUB_IDENT, **author}
            tip = await commit_tree(repo.path, tree, [tip], text, env)
        return tip

    # -- handlers: user, repo ---------------------------------------------------------------------------

    async def _get_user(self, call: _Call) -> _Answer:
        return 200, self._user(self.login, self.user_id), {}

    async def _get_rate_limit(self, call: _Call) -> _Answer:
        self._roll_window()
        core = {
            "limit": self.rate_limit,
            "used": min(self.rate_used, self.rate_limit),
            "remaining": max(0, self.rate_limit - self.rate_used),
            "reset": math.ceil(self.rate_reset),
        }
        return 200, {"resources": {"core": core}, "rate": core}, {}

    async def _get_repo(self, call: _Call) -> _Answer:
        return 200, self._repo_json(self._repo_of(call)), {}

    # -- handlers: pull requests ------------------------------------------------------------------------

    async def _create_pull(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        body = _body_object(call.body)
        _check_types(
            body,
            {
                "title": (str,),
                "head": (str,),
                "base": (str,),
                "body": (str, type(None)),
                "draft": (bool,),
                "maintainer_can_modify": (bool,),
            },
        )
        missing = [name for name in ("title", "head", "base") if not body.get(name)]
        if missing:
            raise validation_failed(
                *({"resource": "PullRequest", "code": "missing_field", "field": name} for name in missing)
            )
        head_owner, _, head_ref = body["head"].rpartition(":")
        base_ref = body["base"]
        async with repo.lock:
            head_sha = (
                await self._tip(repo, head_ref) if head_owner.lower() in ("", repo.owner.lower()) else None
            )
            base_sha = await self._tip(repo, base_ref)
            invalid = [
                {"resource": "PullRequest", "field": field, "code": "invalid"}
                for field, sha in (("head", head_sha), ("base", base_sha))
                if sha is None
            ]
            if invalid:
                raise validation_failed(*invalid)
            assert head_sha is not None and base_sha is not None
            if self._open_duplicate(repo, head_ref, base_ref):
                raise validation_failed(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner}:{head_ref}.",
                    }
                )
            if await git_out(repo.path, "rev-list", "--count", f"{base_sha}..{head_sha}") == "0":
                raise validation_failed(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {base_ref} and {body['head']}",
                    }
                )
            pr = self._new_pull(repo, body, head_ref, head_sha, base_ref, base_sha)
        self._event(repo, pr["number"], "opened", self.login)
        return 201, copy.deepcopy(pr), {"Location": pr["url"]}

    def _new_pull(
        self, repo: FakeRepo, body: dict[str, Any], head_ref: str, head_sha: str, base_ref: str, base_sha: str
    ) -> dict[str, Any]:
        number = max(repo.pulls, default=0) + 1
        pr_id = next(self._ids)
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"{self.web_url}/{repo.full_name}/pull/{number}"
        now = self._now()
        pr: dict[str, Any] = {
            "url": f"{api}/pulls/{number}",
            "id": pr_id,
            "node_id": f"PR_{pr_id}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{number}",
            "commits_url": f"{api}/pulls/{number}/commits",
            "review_comments_url": f"{api}/pulls/{number}/comments",
            "comments_url": f"{api}/issues/{number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": number,
            "state": "open",
            "locked": False,
            "title": body["title"],
            "user": self._user(self.login, self.user_id),
            "body": body.get("body"),
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self._branch_json(repo, head_ref, head_sha),
            "base": self._branch_json(repo, base_ref, base_sha),
            "author_association": "OWNER",
            "auto_merge": None,
            "draft": bool(body.get("draft", False)),
            # GitHub works mergeability out in the background: unknown in the creation answer
            "merged": False,
            "mergeable": None,
            "rebaseable": None,
            "mergeable_state": "unknown",
            "merged_by": None,
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": bool(body.get("maintainer_can_modify", False)),
            "commits": 0,
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
        }
        repo.pulls[number] = pr
        return pr

    async def _get_pull(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        pr = self._pull_of(repo, int(call.params["number"]))
        async with repo.lock:  # not halfway through a merge (its base moved, its PR not yet marked)
            await self._refresh(repo, pr, full=True)
        return 200, copy.deepcopy(pr), {}

    async def _get_issue(self, call: _Call) -> _Answer:
        """A pull request is an issue too; only the issue says who closed it (`closed_by`)."""
        repo = self._repo_of(call)
        number = int(call.params["number"])
        pr = self._pull_of(repo, number)
        async with repo.lock:  # not halfway through a merge (its base moved, its PR not yet marked)
            await self._refresh(repo, pr, full=False)
        closer = next((e["actor"] for e in reversed(self.timeline) if e["repo"] == repo.full_name
                       and e["number"] == number and e["event"] in ("closed", "merged")), None)
        issue = {key: copy.deepcopy(pr[key]) for key in ("id", "number", "title", "body", "user", "state",
                                                         "created_at", "updated_at", "closed_at")}
        issue.update(
            url=f"{self.url}/repos/{repo.full_name}/issues/{number}",
            html_url=pr["html_url"],
            pull_request={"url": pr["url"], "html_url": pr["html_url"], "merged_at": pr["merged_at"]},
            closed_by=self._user(closer) if pr["state"] == "closed" and closer else None,
        )
        return 200, issue, {}

    async def _list_pulls(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        state = call.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise validation_failed({"resource": "Issue", "field": "state", "code": "invalid"})
        async with repo.lock:  # not halfway through a merge
            for pr in repo.pulls.values():
                await self._refresh(repo, pr, full=False)
        pulls = [p for p in repo.pulls.values() if state == "all" or p["state"] == state]
        head = call.query.get("head")
        if head and ":" in head:  # GitHub ignores a head filter without its "owner:" part
            pulls = [p for p in pulls if p["head"]["label"].lower() == head.lower()]
        if base := call.query.get("base"):
            pulls = [p for p in pulls if p["base"]["ref"] == base]
        sort = call.query.get("sort", "created")
        key = "updated_at" if sort in ("updated", "long-running") else "created_at"
        descending = call.query.get("direction", "desc") == "desc"
        pulls.sort(key=lambda p: (p[key], p["number"]), reverse=descending)
        page, link = self._paginate(pulls, call)
        simple = [{k: v for k, v in p.items() if k not in _FULL_ONLY} for p in page]
        return 200, copy.deepcopy(simple), link

    def _paginate(self, items: list[Any], call: _Call) -> tuple[list[Any], dict[str, str]]:
        """One page of `items` (per_page: default 30, at most 100) and its Link header, if any."""
        try:
            per_page = min(100, max(1, int(call.query.get("per_page", "30"))))
            page = max(1, int(call.query.get("page", "1")))
        except ValueError:
            per_page, page = 30, 1
        last = max(1, math.ceil(len(items) / per_page))

        def link(n: int) -> str:
            query = {**call.query, "per_page": str(per_page), "page": str(n)}
            return f"{self.url}{call.api_path}?{urlencode(query)}"

        rels = []
        if page < last:
            rels += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        if page > 1:
            rels += [f'<{link(page - 1)}>; rel="prev"', f'<{link(1)}>; rel="first"']
        start = (page - 1) * per_page
        return items[start : start + per_page], ({"Link": ", ".join(rels)} if rels else {})

    async def _update_pull(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        body = _body_object(call.body)
        _check_types(body, {"title": (str,), "body": (str, type(None)), "state": (str,), "base": (str,)})
        async with repo.lock:
            pr = self._pull_of(repo, int(call.params["number"]))
            await self._refresh(repo, pr, full=False)
            state = body.get("state")
            if state not in (None, "open", "closed"):
                raise validation_failed({"resource": "PullRequest", "field": "state", "code": "invalid"})
            if "base" in body and body["base"] != pr["base"]["ref"]:
                await self._change_base(repo, pr, body["base"])
            if "title" in body:
                pr["title"] = body["title"]
            if "body" in body:
                pr["body"] = body["body"]
            if state == "closed" and pr["state"] == "open":
                self._close(repo, pr, self.login)
            elif state == "open" and pr["state"] == "closed":
                await self._reopen(repo, pr)
            pr["updated_at"] = self._now()
            await self._refresh(repo, pr, full=True)
        return 200, copy.deepcopy(pr), {}

    async def _change_base(self, repo: FakeRepo, pr: dict[str, Any], base: str) -> None:
        sha = await self._tip(repo, base)
        if sha is None or pr["state"] != "open":
            raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if self._open_duplicate(repo, pr["head"]["ref"], base, besides=pr["number"]):
            head = pr["head"]["ref"]
            message = f"A pull request already exists for base branch '{base}' and head branch '{head}'"
            raise validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
        pr["base"] = self._branch_json(repo, base, sha)

    async def _reopen(self, repo: FakeRepo, pr: dict[str, Any]) -> None:
        if pr["merged"]:
            raise validation_failed(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": "state cannot be changed. The pull request has been merged.",
                }
            )
        head = await self._tip(repo, pr["head"]["ref"])
        if head is None or await self._tip(repo, pr["base"]["ref"]) is None:
            raise validation_failed(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": "state cannot be changed. The head branch was deleted.",
                }
            )
        if self._open_duplicate(repo, pr["head"]["ref"], pr["base"]["ref"], besides=pr["number"]):
            raise validation_failed(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for {repo.owner}:{pr['head']['ref']}.",
                }
            )
        pr["state"] = "open"
        pr["closed_at"] = None
        self._event(repo, pr["number"], "reopened", self.login)

    async def _get_merged(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        pr = self._pull_of(repo, int(call.params["number"]))
        async with repo.lock:  # not halfway through a merge (its base moved, its PR not yet marked)
            await self._refresh(repo, pr, full=False)
        if not pr["merged"]:
            raise ApiError(
                404, "Not Found", documentation_url=f"{PULLS_DOCS}#check-if-a-pull-request-has-been-merged"
            )
        return 204, None, {}

    async def _merge_pull(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        body = _body_object(call.body)
        _check_types(
            body, {"sha": (str,), "commit_title": (str,), "commit_message": (str,), "merge_method": (str,)}
        )
        new = await self._merge(
            repo,
            int(call.params["number"]),
            method=body.get("merge_method", "merge"),
            by=self.login,
            sha=body.get("sha"),
            title=body.get("commit_title"),
            message=body.get("commit_message"),
        )
        return 200, {"sha": new, "merged": True, "message": "Pull Request successfully merged"}, {}

    # -- handlers: refs ---------------------------------------------------------------------------------

    async def _get_ref(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        ref = call.params["ref"]
        sha = None if ref.startswith("-") else await rev(repo.path, f"refs/{ref}")
        if sha is None:
            raise ApiError(404, "Not Found", documentation_url=f"{REFS_DOCS}#get-a-reference")
        api = f"{self.url}/repos/{repo.full_name}"
        return (
            200,
            {
                "ref": f"refs/{ref}",
                "node_id": f"REF_{ref}",
                "url": f"{api}/git/refs/{ref}",
                "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"},
            },
            {},
        )

    async def _delete_ref(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        ref = call.params["ref"]
        async with repo.lock:
            sha = None if ref.startswith("-") else await rev(repo.path, f"refs/{ref}")
            if sha is None:
                raise ApiError(
                    422, "Reference does not exist", documentation_url=f"{REFS_DOCS}#delete-a-reference"
                )
            await git_out(repo.path, "update-ref", "-d", f"refs/{ref}", sha)
            if ref.startswith("heads/"):
                branch = ref.removeprefix("heads/")
                for pr in repo.pulls.values():
                    if pr["state"] == "open" and branch in (pr["head"]["ref"], pr["base"]["ref"]):
                        self._close(repo, pr, self.login)
        return 204, None, {}

    # -- handlers: checks and statuses ------------------------------------------------------------------

    async def _resolve(self, repo: FakeRepo, ref: str) -> str:
        """The commit a ref names: a branch, a tag, or a (possibly short) sha; 422 if none."""
        if not ref.startswith("-"):
            for name in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
                sha = await rev(repo.path, name)
                if sha is not None:
                    return sha
        raise ApiError(422, f"No commit found for SHA: {ref}", documentation_url=f"{DOCS}/commits/commits")

    async def _list_check_runs(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        sha = await self._resolve(repo, call.params["ref"])
        runs = list(repo.check_runs.get(sha, []))
        if name := call.query.get("check_name"):
            runs = [r for r in runs if r["name"] == name]
        if status := call.query.get("status"):
            runs = [r for r in runs if r["status"] == status]
        page, link = self._paginate(runs, call)
        shown = [{**r, "pull_requests": self._pulls_at(repo, sha)} for r in page]
        return 200, copy.deepcopy({"total_count": len(runs), "check_runs": shown}), link

    def _pulls_at(self, repo: FakeRepo, sha: str) -> list[dict[str, Any]]:
        """The open pull requests whose head is `sha`, as a check run lists them."""
        return [
            {
                "url": p["url"],
                "id": p["id"],
                "number": p["number"],
                "head": {k: p["head"][k] for k in ("ref", "sha")},
                "base": {k: p["base"][k] for k in ("ref", "sha")},
            }
            for p in repo.pulls.values()
            if p["state"] == "open" and p["head"]["sha"] == sha
        ]

    async def _get_combined_status(self, call: _Call) -> _Answer:
        repo = self._repo_of(call)
        sha = await self._resolve(repo, call.params["ref"])
        latest: dict[str, dict[str, Any]] = {}
        for status in repo.statuses.get(sha, []):
            latest.pop(status["context"], None)
            latest[status["context"]] = status
        statuses = list(reversed(latest.values()))  # newest first
        api = f"{self.url}/repos/{repo.full_name}"
        return (
            200,
            copy.deepcopy(
                {
                    "state": combined_state([s["state"] for s in statuses]),
                    "statuses": statuses,
                    "sha": sha,
                    "total_count": len(statuses),
                    "repository": self._repo_json(repo),
                    "commit_url": f"{api}/commits/{sha}",
                    "url": f"{api}/commits/{sha}/status",
                }
            ),
            {},
        )


def combined_state(states: list[str]) -> str:
    """GitHub's combined status: failure if any context reports error or failure; pending if there are
    no statuses or any is pending; success when every context's latest status is success."""
    if any(s in ("error", "failure") for s in states):
        return "failure"
    if not states or "pending" in states:
        return "pending"
    return "success"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
