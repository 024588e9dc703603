"""The fake's HTTP server: routes, tokens and scopes, injected faults and outages (including a call
carried out whose answer never arrives: `drop_after_accept`), and Slack's rate limits (a token bucket
per method, per channel for chat.postMessage, on an injectable clock, answered with HTTP 429 +
Retry-After).

`FakeSlack` is every surface (chat, reactions, conversations, views, files, events, Socket Mode)
behind one aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .chat import ChatMixin
from .conversations import ConversationsMixin
from .events import EventsMixin
from .files import FilesMixin
from .reactions import ReactionsMixin
from .socketmode import SocketModeMixin
from .state import Fail
from .views import ViewsMixin

DEFAULT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "files:write",
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "reactions:write",
    "users:read",
)

# Bucket name -> (capacity, refill per second). "chat.postMessage" is per channel; tiers are per method
# for the whole workspace (Slack counts each method separately, shared by every channel and task): every
# Tier 3 method has its own bucket of this size. A method name as a key sets that method's bucket alone.
DEFAULT_LIMITS: dict[str, tuple[float, float]] = {
    "chat.postMessage": (3, 1.0),
    "tier1": (5, 1 / 60),
    "tier2": (10, 20 / 60),
    "tier3": (15, 50 / 60),
    "tier4": (20, 100 / 60),
}


class _Bucket:
    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.last = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# method -> (tier, required scopes (any of))
_METHODS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "auth.test": (None, ()),
    "apps.connections.open": ("tier1", ()),
    "chat.postMessage": ("chat.postMessage", ("chat:write",)),
    "chat.update": ("tier3", ("chat:write",)),
    "chat.delete": ("tier3", ("chat:write",)),
    "chat.postEphemeral": ("tier4", ("chat:write",)),
    "chat.getPermalink": (None, ()),
    "reactions.add": ("tier3", ("reactions:write",)),
    "reactions.remove": ("tier3", ("reactions:write",)),
    "conversations.info": ("tier3", ("channels:read", "groups:read", "im:read", "mpim:read")),
    "conversations.join": ("tier3", ("channels:join",)),
    # any of these lets the call through; each conversation then needs the scope of its kind
    "conversations.history": ("tier3", ("channels:history", "groups:history", "im:history", "mpim:history")),
    "conversations.replies": ("tier3", ("channels:history", "groups:history", "im:history", "mpim:history")),
    "users.info": ("tier4", ("users:read",)),
    "views.open": ("tier4", ()),
    "views.push": ("tier4", ()),
    "views.update": ("tier4", ()),
    "views.publish": ("tier4", ()),
    "files.getUploadURLExternal": ("tier4", ("files:write",)),
    "files.completeUploadExternal": ("tier4", ("files:write",)),
    "files.upload": ("tier2", ("files:write",)),
}

_JSON_ARGS = ("blocks", "attachments", "view", "files", "metadata")


class _Rated(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass
class _Unparsed:
    raw: str


class FakeSlack(
    ChatMixin, ReactionsMixin, ConversationsMixin, ViewsMixin, FilesMixin, EventsMixin, SocketModeMixin
):
    """An aiohttp server on 127.0.0.1 that answers like Slack's Web API and Socket Mode."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        bot_user_id: str = "UBOT",
        team_id: str = "T1",
        rate_limits: bool = True,
        clock: Callable[[], float] = time.monotonic,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        limits: Mapping[str, tuple[float, float]] | None = None,
        bot_id: str = "BBOT",
        app_id: str = "A1",
    ) -> None:
        super().__init__(
            bot_token=bot_token,
            app_token=app_token,
            bot_user_id=bot_user_id,
            team_id=team_id,
            clock=clock,
            scopes=scopes,
            bot_id=bot_id,
            app_id=app_id,
        )
        self.rate_limits = rate_limits
        self.limits: dict[str, tuple[float, float]] = {**DEFAULT_LIMITS, **(limits or {})}
        self.rate_limited: Counter[str] = Counter()

        self._faults: dict[str, list[tuple[int, str | None]]] = {}
        self._drops: Counter[str] = Counter()  # drop_after_accept: method -> accepted calls left to drop
        self.dropped: Counter[str] = Counter()  # method -> calls done but never answered
        # random faults (inject_faults): off until asked for, so default behaviour is unchanged
        self.faults_injected: Counter[str] = Counter()  # "429" / "500" -> calls answered so
        self._fault_rate = 0.0
        self._fault_statuses: tuple[int, ...] = ()
        self._fault_methods: frozenset[str] | None = None
        self._fault_rng = random.Random(0)
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/api/"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server stopping")
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test controls ------------------------------------------------------------------------------

    def fail_next(self, method: str, count: int = 1, *, status: int = 500, error: str | None = None) -> None:
        """The next `count` calls of `method` fail: with `error`, as Slack does (HTTP 200, ok:false);
        otherwise with HTTP `status` (429 carries Retry-After: 1). They change no state."""
        self._faults.setdefault(method, []).extend([(status, error)] * count)

    def drop_after_accept(self, method: str = "chat.postMessage", count: int = 1) -> None:
        """The next `count` calls of `method` that Slack accepts are carried out (a post is stored) and
        then the connection closes without an answer, as when the network fails after Slack did the
        work: the client sees a transport error (aiohttp's ServerDisconnectedError) although the message
        exists. Counted in `dropped`; the call is recorded with `dropped=True`."""
        self._drops[method] += count

    def inject_faults(self, rate: float = 0.1, statuses: Sequence[int] = (429, 500), *, seed: int = 0,
                      methods: Collection[str] | None = None) -> None:
        """From now on a random `rate` of Web API calls (of `methods`, default all) fails with one of
        `statuses`: 429 with Retry-After: 1 (``ratelimited``), anything else ``fatal_error``. Like
        `fail_next` they change no state. Seeded, so a run's fault pattern follows the order of calls
        and a failure can be replayed; counted in `faults_injected`. `rate=0` turns them off."""
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        if rate and not statuses:
            raise ValueError("statuses must name at least one HTTP status")
        self._fault_rate = rate
        self._fault_statuses = tuple(statuses)
        self._fault_methods = frozenset(methods) if methods is not None else None
        self._fault_rng = random.Random(seed)

    def _random_fault(self, method: str) -> int | None:
        if not self._fault_rate or (self._fault_methods is not None and method not in self._fault_methods):
            return None
        if self._fault_rng.random() >= self._fault_rate:
            return None
        status = self._fault_rng.choice(self._fault_statuses)
        self.faults_injected[str(status)] += 1
        return status

    def set_down(self, down: bool) -> None:
        """While down every HTTP request (API, upload, response_url) answers 503."""
        self._down = down

    # -- HTTP: Web API ------------------------------------------------------------------------------

    def _rate_limit(self, method: str, tier: str | None, args: dict[str, Any]) -> float:
        if not self.rate_limits or tier is None:
            return 0.0
        key: tuple[str, ...] = (method,)
        if tier == "chat.postMessage":
            key = (method, str(args.get("channel")))
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            capacity, rate = self.limits.get(method) or self.limits[tier]
            bucket = self._buckets[key] = _Bucket(capacity, rate, now)
        return bucket.take(now)

    async def _read_args(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        args: dict[str, Any] = dict(request.query)
        form_token: str | None = args.pop("token", None)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as e:
                    raise Fail("invalid_json", [f"request body is not JSON: {e}"]) from None
                if not isinstance(body, dict):
                    raise Fail("invalid_json", ["request body must be a JSON object"])
                body.pop("token", None)  # Slack ignores tokens inside JSON bodies: use the header
                args.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for k, v in form.items():
                    args[k] = v if isinstance(v, str) else "(file)"
                form_token = args.pop("token", None) or form_token
            else:
                raw = await request.text()
                if raw:
                    args.update(dict(parse_qsl(raw)))
        for k in _JSON_ARGS:
            if isinstance(args.get(k), str):
                try:
                    args[k] = json.loads(args[k])
                except ValueError:
                    args[k] = _Unparsed(args[k])
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else form_token
        return args, token

    def _json(
        self, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        h = {"x-oauth-scopes": ",".join(self.scopes)}
        h.update(headers or {})
        return web.json_response(body, status=status, headers=h)

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args, token = await self._read_args(request)
        except Fail as f:
            body = {"ok": False, "error": f.error, "errors": f.errors}
            self._record(method, {}, body, 200, True)
            return self._json(body)
        if self._down:
            body = {"ok": False, "error": "service_unavailable"}
            self._record(method, args, body, 503, False)
            return self._json(body, 503)
        faults = self._faults.get(method)
        if faults:
            status, error = faults.pop(0)
            if error is not None:
                body = {"ok": False, "error": error}
                self._record(method, args, body, 200, False)
                return self._json(body)
            body = {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"}
            self._record(method, args, body, status, False)
            return self._json(body, status, {"Retry-After": "1"} if status == 429 else None)
        injected = self._random_fault(method)
        if injected is not None:
            body = {"ok": False, "error": "ratelimited" if injected == 429 else "fatal_error"}
            self._record(method, args, body, injected, False)
            return self._json(body, injected, {"Retry-After": "1"} if injected == 429 else None)

        status, body, headers = 200, {}, {}
        try:
            body = self._dispatch(method, args, token)
        except _Rated as r:
            status, headers = 429, {"Retry-After": str(r.retry_after)}
            body = {"ok": False, "error": "ratelimited"}
            self.rate_limited[method] += 1
        except Fail as f:
            body = {"ok": False, "error": f.error, **f.extra}
            if f.errors:
                body["errors"] = f.errors
                body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in f.errors]}
        ok = bool(body.get("ok"))
        if ok and self._drops[method] > 0:
            self._drops[method] -= 1
            self.dropped[method] += 1
            self._record(method, args, body, status, rejected=False, dropped=True)
            if request.transport is not None:
                request.transport.abort()  # no answer: the client's connection just closes
            return self._json(body, status, headers)
        self._record(method, args, body, status, rejected=not ok and status != 429)
        return self._json(body, status, headers)

    def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method not in _METHODS:
            raise Fail("unknown_method", [f"the fake does not implement {method}"], req_method=method)
        tier, needed = _METHODS[method]
        if not token:
            raise Fail("not_authed")
        if method == "apps.connections.open":
            if token == self.bot_token:
                raise Fail(
                    "not_allowed_token_type", ["apps.connections.open needs the app-level (xapp-) token"]
                )
            if token != self.app_token:
                raise Fail("invalid_auth")
        elif token == self.app_token:
            raise Fail("not_allowed_token_type", [f"{method} needs the bot token, not the app-level token"])
        elif token != self.bot_token:
            raise Fail("invalid_auth")
        if needed and not any(s in self.scopes for s in needed):
            raise Fail("missing_scope", needed=",".join(needed), provided=",".join(self.scopes))
        for k, v in args.items():
            if isinstance(v, _Unparsed):
                code = {"blocks": "invalid_blocks_format", "metadata": "invalid_metadata_format"}.get(
                    k, "invalid_arguments"
                )
                raise Fail(code, [f"{k} is not valid JSON: {v.raw[:80]!r}"])
        wait = self._rate_limit(method, tier, args)
        if wait > 0:
            raise _Rated(max(1, math.ceil(wait)))
        handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, "_m_" + method.replace(".", "_"))
        return handler(args)

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack/",
            "team": "Fake Team",
            "user": "superset-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }
