"""A fake Anthropic Messages API (`POST /v1/messages`, SSE streaming) driven by a script.

    with FakeAnthropic([write("hello.txt", "hi\\n"), bash("git status"), say("Done.")]) as api:
        env["ANTHROPIC_BASE_URL"] = api.url

Each request of the agent's main loop (one that offers tools) takes the next step of the script:
a tool call (`write`, `bash`, `tool`), a final answer (`say`), or an HTTP failure (`fail(401)`,
which answers every later request the same way when `sticky`). Once the script is used up the
model answers "Nothing more to do." Requests without tools (titles, summaries) get a short text
and take no step. Tool inputs may contain "{cwd}", filled with the working directory the agent's
system prompt names ("Primary working directory: /path"), since Claude Code's tools take absolute paths.

Every request is kept in `requests` (path, headers, body), so a test can check what the CLI
sent: the conversation of a resumed session, the key, the tools offered.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from fakemodels.server import FakeModelServer, ModelHandler

MODEL = "claude-sonnet-4-5-20250929"
_WORKDIR = re.compile(r"[Ww]orking directory: (\S+)")


@dataclass(frozen=True)
class Usage:
    """Token counts reported for one model reply (message_start and message_delta)."""

    input_tokens: int = 100
    output_tokens: int = 20
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True)
class Step:
    """One model reply: content blocks ("text", str) / ("tool_use", name, input), or a failure."""

    blocks: tuple[tuple[Any, ...], ...] = ()
    usage: Usage = field(default_factory=Usage)
    status: int = 200  # != 200: answer with this HTTP error instead
    error_type: str = "api_error"
    message: str = ""
    sticky: bool = False  # a failure that answers every later request too
    should_retry: bool | None = None  # sent as `x-should-retry` when set; the CLI's own rule otherwise


def say(text: str, usage: Usage | None = None) -> Step:
    return Step(blocks=(("text", text),), usage=usage or Usage())


def tool(name: str, tool_input: dict[str, Any], text: str | None = None, usage: Usage | None = None) -> Step:
    blocks: tuple[tuple[Any, ...], ...] = (("tool_use", name, tool_input),)
    if text:
        blocks = (("text", text), *blocks)
    return Step(blocks=blocks, usage=usage or Usage())


def write(rel_path: str, content: str, usage: Usage | None = None) -> Step:
    """The Write tool on `rel_path` inside the working directory (or an absolute path)."""
    path = rel_path if rel_path.startswith("/") else "{cwd}/" + rel_path
    return tool("Write", {"file_path": path, "content": content}, usage=usage)


def bash(command: str, usage: Usage | None = None) -> Step:
    return tool("Bash", {"command": command, "description": f"Run {command}"}, usage=usage)


def fail(status: int, message: str | None = None, sticky: bool = True, should_retry: bool | None = None) -> Step:
    kinds = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error",
             500: "api_error", 529: "overloaded_error"}
    return Step(status=status, error_type=kinds.get(status, "api_error"),
                message=message or {401: "invalid x-api-key"}.get(status, "Internal server error"),
                sticky=sticky, should_retry=should_retry)


def _fill(value: Any, cwd: str) -> Any:
    if isinstance(value, str):
        return value.replace("{cwd}", cwd)
    if isinstance(value, dict):
        return {k: _fill(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, cwd) for v in value]
    return value


def system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, list):
        return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return system if isinstance(system, str) else ""


def message_texts(body: dict[str, Any]) -> list[str]:
    """Every text, tool input and tool result of a request's conversation, in order, as strings."""
    out: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
            continue
        for block in content or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                out.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                out.append(json.dumps(block.get("input")))
            elif block.get("type") == "tool_result":
                inner = block.get("content")
                out.append(inner if isinstance(inner, str) else json.dumps(inner))
    return out


_NOT_FOUND = {"type": "error", "error": {"type": "not_found_error", "message": "not found"}}


class _Handler(ModelHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.fake._record(self, None)
        self.send_json(404, _NOT_FOUND)

    def do_POST(self) -> None:
        fake: FakeAnthropic = self.fake
        try:
            body = self.read_json()
        except ValueError:
            body = {}
        fake._record(self, body)
        path = self.path.split("?", 1)[0]
        if path.endswith("/count_tokens"):
            self.send_json(200, {"input_tokens": 100})
            return
        if not path.endswith("/v1/messages"):
            self.send_json(404, _NOT_FOUND)
            return
        step = fake._next(body)
        if step.status != 200:
            headers = {} if step.should_retry is None else {"x-should-retry": str(step.should_retry).lower()}
            self.send_json(step.status, {"type": "error",
                                         "error": {"type": step.error_type, "message": step.message}}, headers)
            return
        msg_id = f"msg_fake{next(fake._ids):04d}"
        if body.get("stream"):
            self.start_events()
            for event in fake._events(msg_id, step, body):
                self.send_event(event, event["type"])
        else:
            self.send_json(200, fake._message(msg_id, step, body))


class FakeAnthropic(FakeModelServer):
    """The server; a context manager (or `start()` / `stop()`), listening on 127.0.0.1:0."""

    handler = _Handler
    thread_name = "fake-anthropic"

    def __init__(self, script: list[Step] | None = None) -> None:
        self.script: list[Step] = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self.agent_requests: list[dict[str, Any]] = []  # the ones that took a step
        self._lock = threading.Lock()
        self._sticky: Step | None = None
        self._ids = itertools.count(1)
        self.bind()

    def add(self, *steps: Step) -> None:
        """More steps, e.g. for a follow-up run."""
        with self._lock:
            self.script.extend(steps)

    def _record(self, handler: ModelHandler, body: dict[str, Any] | None) -> None:
        with self._lock:
            self.requests.append({"method": handler.command, "path": handler.path,
                                  "headers": handler.header_dict(), "body": body})

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            if self._sticky is not None:
                return self._sticky
            if not body.get("tools"):
                return say("OK", Usage(input_tokens=10, output_tokens=2))
            self.agent_requests.append(body)
            if not self.script:
                return say("Nothing more to do.")
            step = self.script.pop(0)
            if step.status != 200 and step.sticky:
                self._sticky = step
            return step

    def _blocks(self, step: Step, body: dict[str, Any]) -> list[dict[str, Any]]:
        match = _WORKDIR.search(system_text(body))
        cwd = match.group(1) if match else "."
        blocks: list[dict[str, Any]] = []
        for spec in step.blocks:
            if spec[0] == "text":
                blocks.append({"type": "text", "text": spec[1]})
            else:
                blocks.append({"type": "tool_use", "id": f"toolu_fake{next(self._ids):04d}", "name": spec[1],
                               "input": _fill(spec[2], cwd)})
        return blocks

    def _stop_reason(self, step: Step) -> str:
        return "tool_use" if any(b[0] == "tool_use" for b in step.blocks) else "end_turn"

    def _usage(self, step: Step, output_tokens: int) -> dict[str, Any]:
        u = step.usage
        return {"input_tokens": u.input_tokens, "cache_creation_input_tokens": u.cache_creation_input_tokens,
                "cache_read_input_tokens": u.cache_read_input_tokens, "output_tokens": output_tokens}

    def _message(self, msg_id: str, step: Step, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": msg_id, "type": "message", "role": "assistant", "model": body.get("model") or MODEL,
                "content": self._blocks(step, body), "stop_reason": self._stop_reason(step),
                "stop_sequence": None, "usage": self._usage(step, step.usage.output_tokens)}

    def _events(self, msg_id: str, step: Step, body: dict[str, Any]) -> list[dict[str, Any]]:
        start = self._message(msg_id, step, body)
        blocks = start["content"]
        start.update(content=[], stop_reason=None, usage=self._usage(step, 1))  # as the real API: 1 at start
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {"type": "text", "text": ""}})
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {**block, "input": {}}})
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
            events.append({"type": "content_block_stop", "index": index})
        events.append({"type": "message_delta", "delta": {"stop_reason": self._stop_reason(step), "stop_sequence": None},
                       "usage": {"output_tokens": step.usage.output_tokens}})
        events.append({"type": "message_stop"})
        return events
