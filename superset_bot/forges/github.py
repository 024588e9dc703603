"""GitHub (and GitHub Enterprise) pull requests through gidgethub, an async client for GitHub's REST
API: small, aiohttp-native (aiohttp is already here for Slack), with ETag caching built in, so the
bot's polling of checks asks with If-None-Match and a 304 costs nothing of the rate limit.

The token goes only into the Authorization header: never into a URL, an error or a log line.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import gidgethub
from gidgethub.aiohttp import GitHubAPI

from superset_bot.config import Settings
from superset_bot.domain.pullrequest import Check, CheckState, check_state
from superset_bot.forges.base import ForgeError, HeadChanged, NotMergeable, RateLimited, RemotePull
from superset_bot.git.commands import run_git

DEFAULT_API_URL = "https://api.github.com"
REQUEST_TIMEOUT = 20.0  # seconds one API call may take
CACHE_ENTRIES = 512  # responses kept for conditional requests
USER_AGENT = "superset-bot"
_SUMMARY_CHARS = 1500

# git@github.com:owner/name.git, ssh://git@host/owner/name, https://host/owner/name(.git)
_REMOTE_URL = re.compile(r"^(?:[a-z+]+://)?(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?[:/](?P<slug>[^/]+/[^/]+?)(?:\.git)?/?$")


def slug_from_remote(url: str, api_url: str = DEFAULT_API_URL) -> str | None:
    """"owner/name" when the remote URL points at the GitHub that `api_url` serves; else None."""
    match = _REMOTE_URL.match(url.strip())
    if not match:
        return None
    api_host = urlsplit(api_url).hostname or ""
    web_host = "github.com" if api_host == "api.github.com" else api_host
    return match["slug"] if match["host"].lower() == web_host.lower() else None


async def repo_slug(settings: Settings, repo_name: str, remote: str) -> str | None:
    """The repository on GitHub a configured repo delivers to: SUPERSET_GITHUB_REPOS, else what its
    remote's URL names; None when neither says."""
    configured = settings.github_repos.get(repo_name)
    if configured:
        return configured
    got = await run_git(settings.repos[repo_name], "remote", "get-url", remote, check=False)
    return slug_from_remote(got.stdout.strip(), settings.github_api_url) if got.returncode == 0 else None


class _Cache(OrderedDict[str, Any]):
    """The least recently used responses, at most CACHE_ENTRIES: gidgethub's ETag cache."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > CACHE_ENTRIES:
            self.popitem(last=False)


class _API(GitHubAPI):
    """gidgethub's client that sends nothing while GitHub said the rate limit is spent (a 403 or 429
    it answered; the caller hears when it lifts), rather than be refused again. gidgethub's own count
    of what remains is not used: it counts every request down, 304s too, which GitHub does not."""

    blocked_until = 0.0

    async def manage_rate_limit(self, *, method: str, url: str) -> None:
        if self.blocked_until > time.time():
            raise RateLimited(f"GitHub's API rate limit is used up until {_clock(self.blocked_until)}",
                              self.blocked_until)


class GitHubForge:
    """Pull requests on GitHub or GitHub Enterprise (`api_url` is then https://HOST/api/v3)."""

    name = "GitHub"

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL) -> None:
        self._token = token
        self.api_url = api_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._api: _API | None = None
        self._cache = _Cache()

    def __repr__(self) -> str:  # the token must never reach a log through a repr
        return f"GitHubForge(api_url={self.api_url!r})"

    def _client(self) -> _API:
        if self._api is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
            self._api = _API(self._session, USER_AGENT, oauth_token=self._token, cache=self._cache,
                             base_url=self.api_url)
        return self._api

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._api = None

    async def _call(self, method: str, url: str, data: Any = None, **url_vars: Any) -> Any:
        api = self._client()
        try:
            if method == "GET":
                return await api.getitem(url, url_vars)
            if method == "POST":
                return await api.post(url, url_vars, data=data)
            if method == "PATCH":
                return await api.patch(url, url_vars, data=data)
            if method == "PUT":
                return await api.put(url, url_vars, data=data)
            return await api.delete(url, url_vars)
        except RateLimited:
            raise
        except gidgethub.RateLimitExceeded as exc:
            api.blocked_until = exc.rate_limit.reset_datetime.timestamp()
            raise RateLimited(f"GitHub's API rate limit is used up until {_clock(api.blocked_until)}",
                              api.blocked_until, 403) from None
        except gidgethub.HTTPException as exc:
            error = _http_error(exc)
            if isinstance(error, RateLimited):
                api.blocked_until = error.reset_at
            raise error from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            what = "no answer in time" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
            raise ForgeError(f"could not reach GitHub at {self.api_url}: {what}"[:300]) from None

    async def find_open_pull(self, slug: str, head: str, base: str) -> RemotePull | None:
        owner = slug.split("/", 1)[0]
        found = await self._call("GET", "/repos/{+slug}/pulls{?state,head,base}", slug=slug,
                                 state="open", head=f"{owner}:{head}", base=base)
        pulls = [_pull(p) for p in found if isinstance(p, Mapping)] if isinstance(found, list) else []
        return pulls[0] if pulls else None

    async def open_pull(self, slug: str, head: str, base: str, title: str, body: str) -> RemotePull:
        data = await self._call("POST", "/repos/{+slug}/pulls", {"title": title, "head": head, "base": base,
                                                                 "body": body}, slug=slug)
        return _pull(data)

    async def get_pull(self, slug: str, number: int) -> RemotePull:
        pull = _pull(await self._call("GET", "/repos/{+slug}/pulls/{number}", slug=slug, number=number))
        if pull.state == "closed" and not pull.merged:
            # a pull request is an issue too, and only the issue says who closed it
            issue = _object(await self._call("GET", "/repos/{+slug}/issues/{number}", slug=slug, number=number))
            closer = _object(issue.get("closed_by")).get("login")
            pull = replace(pull, closed_by=str(closer) if closer else None)
        return pull

    async def checks(self, slug: str, sha: str) -> tuple[Check, ...]:
        runs = await self._call("GET", "/repos/{+slug}/commits/{sha}/check-runs{?per_page}", slug=slug,
                                sha=sha, per_page=100)
        status = await self._call("GET", "/repos/{+slug}/commits/{sha}/status", slug=slug, sha=sha)
        found: list[Check] = []
        for run in (runs or {}).get("check_runs") or []:
            if not isinstance(run, Mapping):
                continue
            done = run.get("status") == "completed"
            output = _object(run.get("output"))
            summary = "\n".join(str(x).strip() for x in (output.get("title"), output.get("summary"),
                                                          output.get("text")) if x and str(x).strip())
            found.append(Check(str(run.get("name") or "check"),
                               check_state(run.get("conclusion")) if done else CheckState.PENDING,
                               summary[:_SUMMARY_CHARS], str(run.get("html_url") or run.get("details_url") or "")))
        for item in (status or {}).get("statuses") or []:
            if isinstance(item, Mapping):
                found.append(Check(str(item.get("context") or "status"), check_state(item.get("state")),
                                   str(item.get("description") or "")[:_SUMMARY_CHARS],
                                   str(item.get("target_url") or "")))
        return tuple(found)

    async def merge_pull(self, slug: str, number: int, *, method: str, sha: str, title: str, message: str) -> str:
        try:
            data = await self._call("PUT", "/repos/{+slug}/pulls/{number}/merge",
                                    {"merge_method": method, "sha": sha, "commit_title": title,
                                     "commit_message": message}, slug=slug, number=number)
        except ForgeError as exc:
            if exc.status == 405:
                raise NotMergeable(exc.reason, 405) from None
            if exc.status == 409:
                raise HeadChanged(exc.reason, 409) from None
            raise
        sha_merged = (data or {}).get("sha") if isinstance(data, Mapping) else None
        if not isinstance(sha_merged, str) or not sha_merged:
            raise ForgeError("GitHub answered the merge without the commit it made")
        return sha_merged

    async def close_pull(self, slug: str, number: int) -> None:
        await self._call("PATCH", "/repos/{+slug}/pulls/{number}", {"state": "closed"}, slug=slug, number=number)

    async def delete_branch(self, slug: str, branch: str) -> None:
        try:
            await self._call("DELETE", "/repos/{+slug}/git/refs/heads/{+branch}", slug=slug, branch=branch)
        except ForgeError as exc:
            if exc.status != 422:  # 422 "Reference does not exist": it is gone already
                raise

    async def repository(self, slug: str) -> Mapping[str, Any]:
        """The repository as GitHub describes it (default branch, the token's permissions on it)."""
        data = await self._call("GET", "/repos/{+slug}", slug=slug)
        return data if isinstance(data, Mapping) else {}

    async def token_scopes(self) -> list[str] | None:
        """The classic token's OAuth scopes (None: a fine-grained token, which has no scope header)."""
        api = self._client()
        try:
            status, headers, _ = await api._request(  # noqa: SLF001 - gidgethub returns no headers otherwise
                "GET", f"{self.api_url}/user", {"authorization": f"token {self._token}", "user-agent": USER_AGENT,
                                                "accept": "application/vnd.github+json"})
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ForgeError(f"could not reach GitHub at {self.api_url}: {exc or type(exc).__name__}") from None
        if status == 401:
            raise ForgeError("GitHub refused the token (Bad credentials)", 401)
        if status >= 400:
            raise ForgeError(f"GitHub answered {status} to GET /user", status)
        scopes = headers.get("x-oauth-scopes")
        return None if scopes is None else [s.strip() for s in scopes.split(",") if s.strip()]


def _http_error(exc: gidgethub.HTTPException) -> ForgeError:
    status = int(exc.status_code)
    message = str(exc.args[0]) if exc.args and exc.args[0] else exc.status_code.phrase
    if status == 401:
        message = "GitHub refused the token (Bad credentials); check SUPERSET_GITHUB_TOKEN"
    elif status == 404:
        message = "GitHub knows no such repository or pull request, or the token may not see it (404)"
    elif status == 429 or (status == 403 and "rate limit" in message.lower()):
        retry = exc.headers.get("retry-after") if exc.headers else None
        wait = float(retry) if retry and retry.isdigit() else 60.0
        return RateLimited(f"GitHub asked to slow down ({message})"[:300], time.time() + wait, status)
    elif status >= 500:
        message = f"GitHub had a problem ({status} {message})"
    return ForgeError(message[:300], status)


def _pull(data: Any) -> RemotePull:
    """A pull request object of GitHub's REST API as a RemotePull; ForgeError when it is not one."""
    if not isinstance(data, Mapping) or not isinstance(data.get("number"), int):
        raise ForgeError("GitHub answered with something that is not a pull request")
    head, base, merged_by = (_object(data.get(name)) for name in ("head", "base", "merged_by"))
    return RemotePull(
        number=data["number"],
        url=str(data.get("html_url") or ""),
        state=str(data.get("state") or "open"),
        merged=bool(data.get("merged")) or bool(data.get("merged_at")),
        head_sha=str(head.get("sha") or ""),
        head_branch=str(head.get("ref") or ""),
        base_branch=str(base.get("ref") or ""),
        merged_by=str(merged_by.get("login")) if merged_by.get("login") else None,
        merge_commit=str(data["merge_commit_sha"]) if data.get("merge_commit_sha") else None,
    )


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
