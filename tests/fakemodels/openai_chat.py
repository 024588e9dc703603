"""A fake OpenAI chat completions API (`POST /v1/chat/completions`) on 127.0.0.1, for real CLIs.

aider (through litellm) talks to it like to any OpenAI-compatible server. Each request takes the
next scripted `Reply` (the last one repeats): a reply whose text carries edit blocks in aider's
format, an HTTP error such as 401 or 500, with the usage numbers the model "spent". Both
non-streaming JSON and streaming SSE (`"stream": true`) answers are produced, so a client may run
either way. Every request body is kept in `requests`, so a test can check what the model was
sent (e.g. that a follow-up carried the earlier exchange).

Usage::

    with FakeOpenAIChat([Reply(text=whole_edit("hello.txt", "hi\\n"))]) as fake:
        env = {"OPENAI_API_BASE": fake.base_url, ...}
        ...
        assert fake.requests[0]["messages"][-1]["role"] == "user"

`whole_edit` and `diff_edit` write the edit blocks of aider's "whole" and "diff" edit formats.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fakemodels.server import FakeModelServer, ModelHandler

__all__ = ["FakeOpenAIChat", "Reply", "diff_edit", "whole_edit"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


@dataclass(frozen=True)
class Reply:
    """What the fake model answers to one request.

    `status` 200 answers `text` with `usage` (prompt_tokens, completion_tokens); any other status
    answers an OpenAI-style error body with `error` as its message, with `x-should-retry: false`
    unless `client_retry` (the OpenAI SDK inside litellm then does not retry the request itself, so
    only the agent's own retries happen: one request per attempt).
    """

    text: str = "Done."
    status: int = 200
    prompt_tokens: int = 770
    completion_tokens: int = 19
    error: str | None = None
    finish_reason: str = "stop"
    extra_usage: dict[str, Any] = field(default_factory=dict)
    client_retry: bool = False

    def error_body(self) -> dict[str, Any]:
        message = self.error or {
            401: "Incorrect API key provided: sk-bad. You can find your API key at https://platform.openai.com.",
            403: "You are not allowed to use this model.",
            429: "Rate limit reached for requests.",
            500: "The server had an error while processing your request.",
        }.get(self.status, f"HTTP {self.status}")
        code = "invalid_api_key" if self.status == 401 else None
        return {"error": {"message": message, "type": ERROR_TYPES.get(self.status, "api_error"),
                          "param": None, "code": code}}


def whole_edit(path: str, content: str, before: str = "Here is the file:") -> str:
    """A reply in aider's "whole" edit format: the file's path, then its full content fenced."""
    if not content.endswith("\n"):
        content += "\n"
    return f"{before}\n\n{path}\n```\n{content}```\n"


def diff_edit(path: str, search: str, replace: str, before: str = "Here is the change:") -> str:
    """A reply in aider's "diff" edit format: one SEARCH/REPLACE block (empty `search` creates)."""
    def block(text: str) -> str:
        return text if not text or text.endswith("\n") else text + "\n"

    return (f"{before}\n\n{path}\n```\n<<<<<<< SEARCH\n{block(search)}=======\n{block(replace)}"
            f">>>>>>> REPLACE\n```\n")


class _Handler(ModelHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": self.fake.model, "object": "model",
                                                             "owned_by": "fake"}]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})

    def do_POST(self) -> None:  # noqa: N802
        fake: FakeOpenAIChat = self.fake
        try:
            body = self.read_json()
        except ValueError:
            self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})
            return
        reply = fake._take(self.path, body if isinstance(body, dict) else {})
        if reply.status != 200:
            headers = {} if reply.client_retry else {"x-should-retry": "false"}
            self.send_json(reply.status, reply.error_body(), headers)
        elif isinstance(body, dict) and body.get("stream"):
            self._stream(body, reply)
        else:
            self.send_json(200, fake._completion(body, reply))

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        fake: FakeOpenAIChat = self.fake
        self.start_events()
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> None:
            event: dict[str, Any] = {
                "id": ident, "object": "chat.completion.chunk", "created": created,
                "model": body.get("model") or fake.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else [],
            }
            if usage is not None:
                event["usage"] = usage
            self.send_event(event)

        chunk({"role": "assistant", "content": ""})
        text = reply.text
        for start in range(0, len(text), 64):
            chunk({"content": text[start:start + 64]})
        chunk({}, reply.finish_reason)
        chunk({}, usage=fake._usage(reply))
        self.send_event("[DONE]")


class FakeOpenAIChat(FakeModelServer):
    """The server; `start()`/`stop()` or use it as a context manager. `base_url` ends in /v1."""

    handler = _Handler
    thread_name = "fake-openai-chat"

    def __init__(self, replies: Iterable[Reply] = (), *, model: str = "fake-coder") -> None:
        self.replies: list[Reply] = list(replies) or [Reply()]
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ answers

    def _take(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.paths.append(path)
            return self.replies[min(index, len(self.replies) - 1)]

    def _usage(self, reply: Reply) -> dict[str, Any]:
        return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens, **reply.extra_usage}

    def _completion(self, body: Any, reply: Reply) -> dict[str, Any]:
        model = body.get("model") if isinstance(body, dict) else None
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason}],
            "usage": self._usage(reply),
        }

    def user_texts(self, index: int) -> list[str]:
        """The text of every user message of request `index`, in order."""
        messages = self.requests[index].get("messages") if index < len(self.requests) else None
        texts: list[str] = []
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
                if isinstance(content, str):
                    texts.append(content)
        return texts
