"""The checks every Slack request passes before a listener sees it: signature, payload shape, event dedupe.

Bolt's verification answers 500 to a non-numeric timestamp header, and its middleware and listener
matching index payloads blindly; here those requests get a 401 or a 400, and retried events are dropped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

DEDUPE_KEEP = 5000


class CheckedApp(AsyncApp):
    """Bolt, with the signature and the payload's shape checked before any of Bolt's own middleware."""

    verifier: SignatureVerifier | None = None

    def web_app(self, path: str = "/slack/events", port: int = 3000) -> web.Application:
        served = super().web_app(path=path, port=port)
        served.middlewares.append(unparsable_is_400)
        return served

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if self.verifier is not None and req.mode != "socket_mode":
            timestamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
            signature = (req.headers.get("x-slack-signature") or [""])[0]
            if not timestamp.isdigit() or not self.verifier.is_valid(req.raw_body, timestamp, signature):
                return BoltResponse(status=401, body="")
        problem = malformed(req.body)
        if problem:
            log.warning("refused a malformed Slack payload: %s", problem)
            return BoltResponse(status=400, body="")
        return await super().async_dispatch(req)


@web.middleware
async def unparsable_is_400(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Bolt's aiohttp adapter raises on a body it cannot parse (not UTF-8, `payload=null`, a `user`
    that is not an object) before any check runs; aiohttp would answer 500 and log a traceback.
    Bolt's dispatch answers errors itself, so what escapes here comes from reading the request."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.warning("refused a Slack request that could not be parsed: %s", type(exc).__name__)
        return web.Response(status=400, text="")


class Dedupe(AsyncMiddleware):
    """Slack retries events it thinks were not acked; Bolt does not dedupe them.

    An AsyncMiddleware object, not a function: Bolt builds a function middleware's arguments from
    the payload (action, view, ...) before calling it, which raises on a payload of an odd shape.
    """

    def __init__(self, keep: int = DEDUPE_KEEP) -> None:
        self.keep = keep
        self.seen: OrderedDict[str, None] = OrderedDict()

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse | None:  # noqa: A002
        event_id = req.body.get("event_id") if isinstance(req.body, dict) else None
        if event_id:
            if event_id in self.seen:
                return BoltResponse(status=200, body="")
            self.seen[event_id] = None
            while len(self.seen) > self.keep:
                self.seen.popitem(last=False)
        return await next()


def malformed(body: Any) -> str | None:
    """What is wrong with a payload's shape (the parts Bolt and the handlers rely on), or None."""
    if not isinstance(body, dict):
        return "not a JSON object"
    for key in ("user", "channel", "container", "team", "message", "view", "event"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions without actions"
        if not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) and isinstance(a.get("block_id", ""), str)
                   for a in actions):
            return "an action without a string action_id"
    elif kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str):
            return f"{kind} without a view callback_id"
    elif kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "event_callback without an event type"
    return None
