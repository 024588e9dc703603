"""A fake OpenAI Responses API (`POST /v1/responses`, streamed as SSE) for driving the real Codex CLI.

Codex 0.171 calls `POST {base_url}/responses` with `stream: true` and `store: false`: every
request carries the whole conversation so far in `input` (earlier `function_call` /
`custom_tool_call` items and their `*_output` items included), so a resumed session shows up as
a request whose `input` replays the previous run. The reply is a stream of `response.created`,
`response.output_item.added` / `response.output_item.done` per output item, and
`response.completed` with `usage`.

Each request takes the next `Step` of the server's script (a step is either the output items of
one model response, or an HTTP error); when the script runs out the model says "Done.". The
tools Codex offers in its request (`tools`): `exec_command` (a function, arguments
`{"cmd": "...", "workdir"?: "..."}`) and `apply_patch` (a *custom* freeform tool: the patch text
goes in the item's `input`, not in JSON arguments).

    with FakeResponses([Step([apply_patch(add_file("hello.txt", "hi\\n"))]),
                        Step([exec_command("cat hello.txt")]),
                        Step([message("Wrote hello.txt.")])]) as server:
        config = codex_config(server.base_url)  # for $CODEX_HOME/config.toml

Listens on 127.0.0.1 only, on an ephemeral port; `stop()` (or leaving the `with`) shuts it down.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fakemodels.server import FakeModelServer, ModelHandler

API_KEY_ENV = "FAKE_OPENAI_KEY"  # the provider's env_key in the generated config.toml
GOOD_KEY = "sk-fake-codex-key"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def exec_command(cmd: str, workdir: str | None = None) -> dict[str, Any]:
    """A `function_call` item running `cmd` through Codex's exec_command tool."""
    args: dict[str, Any] = {"cmd": cmd}
    if workdir is not None:
        args["workdir"] = workdir
    return {"type": "function_call", "id": _id("fc"), "call_id": _id("call"), "name": "exec_command",
            "arguments": json.dumps(args), "status": "completed"}


def apply_patch(patch: str) -> dict[str, Any]:
    """A `custom_tool_call` item for Codex's freeform apply_patch tool."""
    return {"type": "custom_tool_call", "id": _id("ctc"), "call_id": _id("call"), "name": "apply_patch",
            "input": patch, "status": "completed"}


def add_file(path: str, content: str) -> str:
    """The apply_patch text that creates `path` (relative to the cwd, or absolute) with `content`."""
    lines = "".join(f"+{line}\n" for line in content.splitlines())
    return f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n"


def message(text: str) -> dict[str, Any]:
    """The assistant's text answer (ends the turn when it is the response's only item)."""
    return {"type": "message", "id": _id("msg"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def reasoning(summary: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": _id("rs"), "summary": [{"type": "summary_text", "text": summary}]}


@dataclass
class Step:
    """One model response: output items and their usage, or an HTTP error status and message."""

    items: Sequence[dict[str, Any]] = ()
    input_tokens: int = 1000
    cached_tokens: int = 0
    output_tokens: int = 50
    status: int = 200
    error: str = ""

    @classmethod
    def fail(cls, status: int, error: str) -> Step:
        return cls(status=status, error=error)


@dataclass
class Seen:
    """One request the server got."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def input_items(self, kind: str) -> list[dict[str, Any]]:
        return [i for i in self.body.get("input", []) if isinstance(i, dict) and i.get("type") == kind]

    def user_texts(self) -> list[str]:
        return [c.get("text", "") for i in self.input_items("message") if i.get("role") == "user"
                for c in i.get("content", []) if isinstance(c, dict)]

    def tool_names(self) -> list[str]:
        return [t.get("name", t.get("type", "")) for t in self.body.get("tools", []) if isinstance(t, dict)]


Script = Sequence[Step] | Callable[[Seen, int], Step]


class _Handler(ModelHandler):
    def do_GET(self) -> None:  # /v1/models and the like: not offered
        self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        try:
            body = self.read_json()
        except ValueError:
            body = {}
        self.fake._handle(self, Seen(self.path, self.header_dict(), body if isinstance(body, dict) else {}))


@dataclass
class FakeResponses(FakeModelServer):
    """The fake server: `script` is a list of steps (one per request) or a function (request, n) -> Step.

    `key` is the bearer token it accepts; any other gets 401 (as OpenAI says for a bad key).
    """

    script: Script = ()
    key: str = GOOD_KEY
    requests: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    handler = _Handler
    thread_name = "fake-openai"

    # ------------------------------------------------------------------ replies

    def _next_step(self, seen: Seen) -> Step:
        with self._lock:
            self.requests.append(seen)
            n = len(self.requests) - 1
        if callable(self.script):
            return self.script(seen, n)
        steps = list(self.script)
        return steps[n] if n < len(steps) else Step([message("Done.")])

    def _handle(self, handler: ModelHandler, seen: Seen) -> None:
        if not seen.path.rstrip("/").endswith("/responses"):
            handler.send_json(404, {"error": {"message": f"no route {seen.path}", "type": "not_found"}})
            return
        if seen.headers.get("authorization") != f"Bearer {self.key}":
            with self._lock:
                self.requests.append(seen)
            handler.send_json(401, {"error": {
                "message": "Incorrect API key provided. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "code": "invalid_api_key", "param": None}})
            return
        step = self._next_step(seen)
        if step.status != 200:
            handler.send_json(step.status, {"error": {"message": step.error or "server error",
                                                      "type": "server_error", "code": None}})
            return
        handler.start_events()
        for event in self._events(seen, step):
            handler.send_event(event, event["type"])

    def _events(self, seen: Seen, step: Step) -> Iterator[dict[str, Any]]:
        response_id = _id("resp")
        model = seen.body.get("model", "gpt-5.5")
        base = {"id": response_id, "object": "response", "model": model, "status": "in_progress", "output": []}
        yield {"type": "response.created", "sequence_number": 0, "response": base}
        seq = 1
        for index, item in enumerate(step.items):
            yield {"type": "response.output_item.added", "sequence_number": seq, "output_index": index,
                   "item": {**item, "status": "in_progress"}}
            yield {"type": "response.output_item.done", "sequence_number": seq + 1, "output_index": index,
                   "item": item}
            seq += 2
        usage = {"input_tokens": step.input_tokens,
                 "input_tokens_details": {"cached_tokens": step.cached_tokens},
                 "output_tokens": step.output_tokens,
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": step.input_tokens + step.output_tokens}
        yield {"type": "response.completed", "sequence_number": seq,
               "response": {**base, "status": "completed", "output": list(step.items), "usage": usage}}


def codex_config(base_url: str, *, model: str = "gpt-5.5") -> str:
    """A `$CODEX_HOME/config.toml` pointing Codex at `base_url`, failing fast (no retries)."""
    return (
        f'model = "{model}"\n'
        'model_provider = "fake"\n'
        "\n"
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{base_url}"\n'
        'wire_api = "responses"\n'
        f'env_key = "{API_KEY_ENV}"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )


@contextmanager
def serving(script: Script, key: str = GOOD_KEY) -> Iterator[FakeResponses]:
    with FakeResponses(script, key) as server:
        yield server
