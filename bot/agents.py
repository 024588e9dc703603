"""Turn a coding agent's raw output lines into progress events.

Agents print very different things: plain text, Claude Code's `stream-json`, Codex's
`exec --json`. The runner hands every output line to a parser from `make_parser`; front ends
only ever see `AgentEvent`s and the running totals in `Progress`. Output from an agent is
untrusted and often surprising (a new CLI version, a warning printed on stdout, a truncated
line), so a parser never raises: whatever it does not understand becomes a plain "line" event.

Token accounting (`AgentEvent.tokens_in` / `tokens_out`):
  * kind "usage": increments since the previous usage event of this parser;
  * kind "result": totals for the whole run, which replace the running sums in `Progress`.
"tokens_in" counts every input token the model processed, cached ones included
(Claude: input + cache_creation_input + cache_read_input; Codex: input_tokens, which already
includes cached_input_tokens).
"""

from __future__ import annotations

import collections
import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

FORMATS = ("plain", "claude-stream-json", "codex-json")

EVENT_KINDS = ("line", "text", "tool", "result", "session", "error", "usage")

LINE_MAX = 500  # chars kept of one event line
TEXT_LINES_MAX = 6  # lines kept of one block of assistant text; the rest becomes "…"
ACTION_ARG_MAX = 60  # chars of a command / pattern shown in an action phrase
FINAL_TEXT_MAX = 20_000  # chars kept of the agent's final answer
JSON_LINE_MAX = 32 * 1024 * 1024  # longer lines are not even decoded
_SEEN_IDS_MAX = 512  # per-parser memory of message / item ids

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SHELLS = {"bash", "sh", "zsh", "dash", "fish", "pwsh", "powershell"}


@dataclass(frozen=True)
class AgentEvent:
    """One thing an agent did or said, reduced to what a status card needs."""

    kind: str  # one of EVENT_KINDS
    text: str  # one human-readable line for the tail ("" for pure usage events)
    action: str | None = None  # "Editing src/api.py", "Running pytest -x", ...
    tool: str | None = None
    session_id: str | None = None
    tokens_in: int | None = None  # "usage": increment; "result": run total (see module doc)
    tokens_out: int | None = None
    cost_usd: float | None = None
    duration_s: float | None = None
    is_error: bool = False  # the run (or a turn of it) failed, not a recoverable tool error
    final_text: str | None = None  # the agent's final answer, for the review


Parser = Callable[[str], list[AgentEvent]]


def make_parser(fmt: str, *, cwd: str | None = None) -> Parser:
    """Return a fresh, stateful parser for one agent run in output format `fmt`.

    `cwd` (the worktree) lets actions show paths relative to it; Claude's init event also
    reports it. The returned callable never raises, whatever line it is given.
    """
    if fmt == "plain":
        return _PlainParser(cwd)
    if fmt == "claude-stream-json":
        return _ClaudeParser(cwd)
    if fmt == "codex-json":
        return _CodexParser(cwd)
    raise ValueError(f"unknown agent output format {fmt!r}: use one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- helpers


def clip(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` chars, marking the cut with "…"."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def clean_line(text: str, limit: int = LINE_MAX) -> str:
    """One tail-safe line: no ANSI colours or control chars, bounded length."""
    text = text[: limit * 4]  # bound the regex work on huge lines
    text = _ANSI_RE.sub("", text)
    text = _CONTROL_RE.sub("", text.replace("\t", "    "))
    return clip(text.rstrip(), limit)


def _first_line(text: str, limit: int = LINE_MAX) -> str:
    for line in text[: max(limit * 8, 4096)].splitlines():
        cleaned = clean_line(line, limit)
        if cleaned.strip():
            return cleaned
    return ""


def _text_lines(text: str, max_lines: int = TEXT_LINES_MAX) -> list[str]:
    """Non-blank lines of a block of text, at most `max_lines`, the last marked "…" if cut."""
    lines: list[str] = []
    more = False
    for raw in text[: LINE_MAX * max_lines * 4].splitlines():
        line = clean_line(raw)
        if not line.strip():
            continue
        if len(lines) == max_lines:
            more = True
            break
        lines.append(line)
    if more and lines:
        lines[-1] = clip(lines[-1], LINE_MAX - 2) + " …"
    return lines


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    """A non-negative token count, or None for anything else (bools, NaN, strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _sum_counts(*values: Any) -> int | None:
    counts = [c for c in (_count(v) for v in values) if c is not None]
    return sum(counts) if counts else None


def _rel_path(path: str, cwd: str | None) -> str:
    """`path` relative to the worktree when it lies inside it, else unchanged."""
    if not cwd or not path.startswith("/"):
        return path
    try:
        return str(PurePosixPath(path).relative_to(PurePosixPath(cwd))) or "."
    except ValueError:
        return path


def _unwrap_shell(command: Any) -> str:
    """The command a person would recognise: `bash -lc 'pytest -x'` -> `pytest -x`."""
    if isinstance(command, list):
        parts = [p for p in command if isinstance(p, str)]
        if not parts:
            return ""
        if len(parts) >= 2 and parts[0].rsplit("/", 1)[-1] in _SHELLS:
            return parts[-1]  # ["bash", "-lc", "pytest -x"]
        return " ".join(parts)
    if not isinstance(command, str):
        return ""
    if len(command) < 4096:
        try:
            parts = shlex.split(command)
        except ValueError:
            return command
        if len(parts) == 3 and parts[0].rsplit("/", 1)[-1] in _SHELLS and parts[1] in ("-c", "-lc"):
            return parts[2]
    return command


def _action_arg(text: str) -> str:
    return clip(_first_line(text, ACTION_ARG_MAX * 2), ACTION_ARG_MAX)


def _line_event(line: str) -> list[AgentEvent]:
    text = clean_line(line)
    return [AgentEvent(kind="line", text=text)] if text.strip() else []


def _as_text(line: object) -> str:
    if isinstance(line, str):
        return line
    if isinstance(line, bytes | bytearray):
        return bytes(line).decode("utf-8", errors="replace")
    return str(line)


class _Parser:
    """Shared never-raise wrapper: any surprise degrades to a plain line."""

    def __init__(self, cwd: str | None) -> None:
        self.cwd = cwd

    def __call__(self, line: str) -> list[AgentEvent]:
        try:
            text = _as_text(line)
        except Exception:
            return []
        try:
            return self.parse(text)
        except Exception:
            try:
                return _line_event(text)
            except Exception:
                return []

    def parse(self, line: str) -> list[AgentEvent]:
        raise NotImplementedError

    def decode(self, line: str) -> dict[str, Any] | None:
        """The JSON object on this line, or None when it is not one."""
        stripped = line.strip()
        if not stripped.startswith("{") or len(stripped) > JSON_LINE_MAX:
            return None
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None


class _PlainParser(_Parser):
    def parse(self, line: str) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for part in line.splitlines():
            events.extend(_line_event(part))
        return events


def _remember(seen: collections.OrderedDict[str, Any], key: str, value: Any) -> None:
    seen[key] = value
    seen.move_to_end(key)
    while len(seen) > _SEEN_IDS_MAX:
        seen.popitem(last=False)


# --------------------------------------------------------------------------- Claude Code


def claude_tool_action(name: str, tool_input: dict[str, Any], cwd: str | None = None) -> str:
    """What a Claude Code tool call is doing, as a short phrase for a status card."""

    def path(*keys: str) -> str:
        for key in keys:
            value = _str(tool_input.get(key))
            if value:
                return clip(_rel_path(value, cwd), ACTION_ARG_MAX * 2)
        return "a file"

    if name in ("Edit", "MultiEdit"):
        return f"Editing {path('file_path', 'path')}"
    if name == "NotebookEdit":
        return f"Editing {path('notebook_path', 'file_path')}"
    if name == "Write":
        return f"Writing {path('file_path', 'path')}"
    if name == "Read":
        return f"Reading {path('file_path', 'path')}"
    if name == "Bash":
        command = _str(tool_input.get("command")) or _str(tool_input.get("description")) or ""
        return f"Running {_action_arg(command)}" if command.strip() else "Running a command"
    if name in ("Grep", "Glob"):
        pattern = _str(tool_input.get("pattern")) or ""
        return f"Searching for '{_action_arg(pattern)}'" if pattern else "Searching"
    if name == "LS":
        return f"Listing {path('path')}"
    if name == "WebFetch":
        url = _str(tool_input.get("url")) or ""
        return f"Fetching {_action_arg(url)}" if url else "Fetching a web page"
    if name == "WebSearch":
        query = _str(tool_input.get("query")) or ""
        return f"Searching the web for '{_action_arg(query)}'" if query else "Searching the web"
    if name == "TodoWrite":
        return "Updating the plan"
    if name in ("Task", "Agent"):
        desc = _str(tool_input.get("description")) or _str(tool_input.get("prompt")) or ""
        return f"Delegating: {_action_arg(desc)}" if desc.strip() else "Delegating to a sub-agent"
    if name.startswith("mcp__"):
        server, _, tool = name[len("mcp__") :].partition("__")
        return clip(f"Using {server}: {tool}" if tool else f"Using {server}", ACTION_ARG_MAX * 2)
    return clip(f"Using {name}", ACTION_ARG_MAX * 2)


class _ClaudeParser(_Parser):
    """`claude -p ... --output-format stream-json --verbose`, one JSON object per line.

    Shapes as documented for Claude Code headless mode / the Agent SDK message types:
    {"type":"system","subtype":"init","session_id","cwd","model","tools"},
    {"type":"assistant","message":{"id","content":[{"type":"text"|"tool_use"|"thinking"}],"usage"}},
    {"type":"user","message":{"content":[{"type":"tool_result","is_error",...}]}},
    {"type":"result","subtype":"success"|"error_max_turns"|"error_during_execution"|...,
     "is_error","duration_ms","num_turns","result","session_id","total_cost_usd","usage"},
    plus "stream_event" lines with --include-partial-messages (ignored: the complete
    assistant message follows). Note: an assistant message with several content blocks may
    arrive as several lines sharing one message id and repeating its usage, so usage is
    counted per message id as a difference.
    """

    def __init__(self, cwd: str | None) -> None:
        super().__init__(cwd)
        self._usage_by_message: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()

    def parse(self, line: str) -> list[AgentEvent]:
        obj = self.decode(line)
        if obj is None:
            return _line_event(line)
        kind = obj.get("type")
        if kind == "system":
            return self._system(obj, line)
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        if kind == "stream_event":
            return []
        return _line_event(line)

    def _system(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        subtype = _str(obj.get("subtype")) or ""
        if subtype == "init":
            session_id = _str(obj.get("session_id"))
            cwd = _str(obj.get("cwd"))
            if cwd and not self.cwd:
                self.cwd = cwd
            model = _str(obj.get("model"))
            tools = _list(obj.get("tools"))
            text = "Session started" + (f" (model {clip(model, 60)}, {len(tools)} tools)" if model else "")
            return [AgentEvent(kind="session", text=text, session_id=session_id)]
        if subtype == "compact_boundary":
            return [AgentEvent(kind="line", text="Compacting the conversation")]
        if subtype:
            return [AgentEvent(kind="line", text=clean_line(f"[system: {subtype}]"))]
        return _line_event(line)

    def _assistant(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = _dict(obj.get("message"))
        events: list[AgentEvent] = []
        for block in _list(message.get("content")):
            block = _dict(block)
            btype = block.get("type")
            if btype == "text":
                for text_line in _text_lines(_str(block.get("text")) or ""):
                    events.append(AgentEvent(kind="text", text=text_line))
            elif btype == "tool_use":
                name = clean_line(_str(block.get("name")) or "tool", 80) or "tool"
                action = claude_tool_action(name, _dict(block.get("input")), self.cwd)
                events.append(AgentEvent(kind="tool", text=action, action=action, tool=name))
        usage = self._usage_increment(message)
        if usage is not None:
            events.append(usage)
        return events

    def _usage_increment(self, message: dict[str, Any]) -> AgentEvent | None:
        usage = _dict(message.get("usage"))
        if not usage:
            return None
        tokens_in = _sum_counts(
            usage.get("input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        )
        tokens_out = _count(usage.get("output_tokens"))
        if tokens_in is None and tokens_out is None:
            return None
        now = (tokens_in or 0, tokens_out or 0)
        msg_id = _str(message.get("id"))
        before = self._usage_by_message.get(msg_id, (0, 0)) if msg_id else (0, 0)
        if msg_id:
            # a repeated message id repeats (or grows) its usage: count only the growth
            now = (max(now[0], before[0]), max(now[1], before[1]))
            _remember(self._usage_by_message, msg_id, now)
        delta_in, delta_out = now[0] - before[0], now[1] - before[1]
        if delta_in == 0 and delta_out == 0:
            return None
        return AgentEvent(kind="usage", text="", tokens_in=delta_in, tokens_out=delta_out)

    def _user(self, obj: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for block in _list(_dict(obj.get("message")).get("content")):
            block = _dict(block)
            if block.get("type") == "tool_result" and block.get("is_error") is True:
                content = block.get("content")
                if isinstance(content, list):
                    content = " ".join(_str(_dict(c).get("text")) or "" for c in content)
                detail = _first_line(_str(content) or "", LINE_MAX - 12)
                events.append(
                    AgentEvent(kind="line", text=f"Tool error: {detail}" if detail else "Tool error")
                )
        return events

    def _result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        subtype = _str(obj.get("subtype")) or ""
        is_error = obj.get("is_error") is True or (bool(subtype) and subtype != "success")
        usage = _dict(obj.get("usage"))
        tokens_in = _sum_counts(
            usage.get("input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        )
        tokens_out = _count(usage.get("output_tokens"))
        cost = _number(obj.get("total_cost_usd"))
        if cost is None:
            cost = _number(obj.get("cost_usd"))  # older Claude Code versions
        duration_ms = _number(obj.get("duration_ms"))
        duration = duration_ms / 1000 if duration_ms is not None and duration_ms >= 0 else None
        final = _str(obj.get("result"))
        if final is None and is_error:
            errors = [e for e in _list(obj.get("errors")) if isinstance(e, str)]
            final = "\n".join(errors) or None
        turns = _count(obj.get("num_turns"))
        bits = []
        if duration is not None:
            bits.append(f"{duration:.1f} s")
        if turns is not None:
            bits.append(f"{turns} turn{'s' if turns != 1 else ''}")
        if cost is not None:
            bits.append(f"${cost:.4f}")
        if is_error:
            head = f"Failed ({clip(subtype, 40)})" if subtype and subtype != "success" else "Failed"
            reason = _first_line(final or "", 200)
            text = head + (f": {reason}" if reason else "")
        else:
            text = "Done"
        text = clean_line(text + (f" in {', '.join(bits)}" if bits else ""))
        return [
            AgentEvent(
                kind="result",
                text=text,
                session_id=_str(obj.get("session_id")),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
                duration_s=duration,
                is_error=is_error,
                final_text=clip(final, FINAL_TEXT_MAX) if final is not None else None,
            )
        ]


# --------------------------------------------------------------------------- Codex


class _CodexParser(_Parser):
    """`codex exec --json PROMPT`, one JSON event per line.

    Shapes from openai/codex `codex-rs/exec/src/exec_events.rs` (ThreadEvent / ThreadItem):
    thread.started{thread_id}, turn.started, turn.completed{usage{input_tokens,
    cached_input_tokens, output_tokens}}, turn.failed{error{message}}, error{message},
    item.started|item.updated|item.completed{item{id, type: agent_message|reasoning|
    command_execution{command, aggregated_output, exit_code, status}|file_change{changes[
    {path, kind}], status}|mcp_tool_call{server, tool}|web_search{query}|todo_list{items}|
    error{message}}}. Codex before 0.44 printed {"id", "msg": {"type": ...}} instead: its most
    useful messages are understood, the rest degrade to plain lines. Per-turn usage is summed
    and reported as run totals on turn.completed (kind "result"; exec runs one turn).
    """

    def __init__(self, cwd: str | None) -> None:
        super().__init__(cwd)
        self._items: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._last_message: str | None = None
        self._thread_id: str | None = None
        self._tokens_in = 0
        self._tokens_out = 0

    def parse(self, line: str) -> list[AgentEvent]:
        obj = self.decode(line)
        if obj is None:
            return _line_event(line)
        kind = obj.get("type")
        if kind == "thread.started":
            self._thread_id = _str(obj.get("thread_id"))
            return [AgentEvent(kind="session", text="Session started", session_id=self._thread_id)]
        if kind == "turn.started":
            return []
        if kind == "turn.completed":
            return self._turn_completed(obj)
        if kind == "turn.failed":
            message = _str(_dict(obj.get("error")).get("message")) or "unknown error"
            return [
                AgentEvent(
                    kind="result",
                    text=clean_line(f"Failed: {_first_line(message)}"),
                    session_id=self._thread_id,
                    is_error=True,
                    final_text=clip(self._last_message or message, FINAL_TEXT_MAX),
                    tokens_in=self._tokens_in or None,
                    tokens_out=self._tokens_out or None,
                )
            ]
        if kind == "error":
            message = _str(obj.get("message")) or "unknown error"
            return [
                AgentEvent(kind="error", text=clean_line(f"Error: {_first_line(message)}"), is_error=True)
            ]
        if kind in ("item.started", "item.updated", "item.completed") and isinstance(obj.get("item"), dict):
            return self._item(kind, obj["item"])
        if kind is None and isinstance(obj.get("msg"), dict):
            return self._legacy(obj["msg"], line)
        return _line_event(line)

    def _turn_completed(self, obj: dict[str, Any]) -> list[AgentEvent]:
        usage = _dict(obj.get("usage"))
        self._tokens_in += _count(usage.get("input_tokens")) or 0
        self._tokens_out += _count(usage.get("output_tokens")) or 0
        text = f"Done ({self._tokens_in:,} tokens in, {self._tokens_out:,} out)"
        final = self._last_message
        return [
            AgentEvent(
                kind="result",
                text=text,
                session_id=self._thread_id,
                tokens_in=self._tokens_in,
                tokens_out=self._tokens_out,
                final_text=clip(final, FINAL_TEXT_MAX) if final is not None else None,
            )
        ]

    def _tool(self, item_id: str | None, action: str, tool: str) -> list[AgentEvent]:
        """A tool event, once per item id (items start, update and complete)."""
        if item_id is not None:
            if item_id in self._items:
                return []
            _remember(self._items, item_id, True)
        return [AgentEvent(kind="tool", text=action, action=action, tool=tool)]

    def _item(self, kind: str, item: dict[str, Any]) -> list[AgentEvent]:
        item_id = _str(item.get("id"))
        itype = item.get("type", item.get("item_type"))  # "item_type" in codex 0.44
        done = kind == "item.completed"
        if itype in ("agent_message", "assistant_message"):
            text = _str(item.get("text"))
            if not done or text is None:
                return []
            self._last_message = text
            return [AgentEvent(kind="text", text=t) for t in _text_lines(text)]
        if itype == "reasoning":
            text = (_str(item.get("text")) or "").replace("**", "")
            first = _first_line(text, LINE_MAX - 2)
            return [AgentEvent(kind="text", text=f"({first})")] if done and first else []
        if itype == "command_execution":
            command = _unwrap_shell(item.get("command"))
            action = f"Running {_action_arg(command)}" if command.strip() else "Running a command"
            events = self._tool(item_id, action, "command_execution")
            exit_code = item.get("exit_code")
            if done and isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
                events.append(AgentEvent(kind="line", text=clean_line(f"Exit {exit_code}: {command}")))
            elif done and item.get("status") == "declined":
                events.append(AgentEvent(kind="line", text=clean_line(f"Declined: {command}")))
            return events
        if itype == "file_change":
            paths = [
                _rel_path(p, self.cwd)
                for p in (_str(_dict(c).get("path")) for c in _list(item.get("changes")))
                if p
            ]
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            action = clip(f"Editing {shown}" if shown else "Editing files", ACTION_ARG_MAX * 3)
            events = self._tool(item_id, action, "file_change")
            if done and item.get("status") == "failed":
                events.append(AgentEvent(kind="line", text=clean_line(f"Patch failed: {shown}")))
            return events
        if itype == "mcp_tool_call":
            server = _str(item.get("server")) or "mcp"
            tool = _str(item.get("tool")) or "tool"
            return self._tool(item_id, clip(f"Using {server}: {tool}", ACTION_ARG_MAX * 2), "mcp_tool_call")
        if itype == "web_search":
            query = _str(item.get("query")) or ""
            action = f"Searching the web for '{_action_arg(query)}'" if query else "Searching the web"
            return self._tool(item_id, action, "web_search")
        if itype == "todo_list":
            return self._tool(item_id, "Updating the plan", "todo_list")
        if itype == "error":
            message = _str(item.get("message")) or "unknown error"
            return (
                [AgentEvent(kind="error", text=clean_line(f"Error: {_first_line(message)}"))] if done else []
            )
        if done and isinstance(itype, str) and itype:
            return [AgentEvent(kind="line", text=clean_line(f"[{itype}]", 80))]
        return []

    def _legacy(self, msg: dict[str, Any], line: str) -> list[AgentEvent]:
        """Codex < 0.44: {"id": "0", "msg": {"type": "agent_message", "message": ...}}."""
        mtype = msg.get("type")
        if mtype == "agent_message":
            text = _str(msg.get("message")) or ""
            self._last_message = text or self._last_message
            return [AgentEvent(kind="text", text=t) for t in _text_lines(text)]
        if mtype == "exec_command_begin":
            command = _unwrap_shell(msg.get("command"))
            action = f"Running {_action_arg(command)}" if command.strip() else "Running a command"
            return self._tool(_str(msg.get("call_id")), action, "command_execution")
        if mtype == "exec_command_end":
            exit_code = msg.get("exit_code")
            if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
                return [AgentEvent(kind="line", text=f"Command exited with {exit_code}")]
            return []
        if mtype == "error":
            message = _str(msg.get("message")) or "unknown error"
            return [
                AgentEvent(kind="error", text=clean_line(f"Error: {_first_line(message)}"), is_error=True)
            ]
        if mtype == "session_configured":
            self._thread_id = _str(msg.get("session_id"))
            return [AgentEvent(kind="session", text="Session started", session_id=self._thread_id)]
        if mtype == "task_complete":
            final = _str(msg.get("last_agent_message")) or self._last_message
            return [
                AgentEvent(
                    kind="result",
                    text="Done",
                    session_id=self._thread_id,
                    final_text=clip(final, FINAL_TEXT_MAX) if final is not None else None,
                )
            ]
        if isinstance(mtype, str) and mtype:
            return (
                []
                if mtype.endswith("_delta")
                else [AgentEvent(kind="line", text=clean_line(f"[{mtype}]", 80))]
            )
        return _line_event(line)


# --------------------------------------------------------------------------- Progress


PHASES = ("starting", "working", "finishing", "done")


@dataclass
class Progress:
    """Running totals and a bounded tail of one task's agent output, for status cards.

    `Progress(tail_lines=20, line_chars=300)`. Phases: "starting" until the first event,
    "working", "finishing" once the agent reported its result (the process may still be
    exiting), "done" after `mark_done()`.
    """

    tail_lines: int = 20
    line_chars: int = 300
    phase: str = "starting"
    action: str | None = None
    tools_used: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    duration_s: float | None = None
    session_id: str | None = None
    final_text: str | None = None
    is_error: bool = False
    lines_seen: int = 0
    tail: collections.deque[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tail_lines = max(1, int(self.tail_lines))
        self.line_chars = max(2, int(self.line_chars))
        self.tail = collections.deque(maxlen=self.tail_lines)

    def apply(self, event: AgentEvent) -> None:
        """Fold one event into the totals and the tail."""
        if self.phase == "starting":
            self.phase = "working"
        if event.session_id:
            self.session_id = event.session_id
        if event.kind == "tool":
            self.tools_used += 1
        if event.action is not None:
            self.action = event.action
        if event.kind == "usage":
            self.tokens_in += max(event.tokens_in or 0, 0)
            self.tokens_out += max(event.tokens_out or 0, 0)
        elif event.kind == "result":
            if event.tokens_in is not None:
                self.tokens_in = event.tokens_in
            if event.tokens_out is not None:
                self.tokens_out = event.tokens_out
            if event.final_text is not None:
                self.final_text = event.final_text
            self.is_error = event.is_error
            self.action = None
            if self.phase != "done":
                self.phase = "finishing"
        if event.cost_usd is not None:
            self.cost_usd = event.cost_usd
        if event.duration_s is not None:
            self.duration_s = event.duration_s
        for line in event.text.splitlines()[: TEXT_LINES_MAX + 1] if event.text else ():
            line = clip(line.rstrip(), self.line_chars)
            if line.strip():
                self.tail.append(line)
                self.lines_seen += 1

    def mark_done(self) -> None:
        """The agent process has exited."""
        self.phase = "done"
        self.action = None

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy, for persistence and status cards."""
        return {
            "phase": self.phase,
            "action": self.action,
            "tools_used": self.tools_used,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "duration_s": self.duration_s,
            "session_id": self.session_id,
            "final_text": self.final_text,
            "is_error": self.is_error,
            "lines_seen": self.lines_seen,
            "tail": list(self.tail),
            "tail_lines": self.tail_lines,
            "line_chars": self.line_chars,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Progress:
        """Rebuild a Progress saved with `snapshot()` (e.g. after a bot restart); lenient."""
        data = data if isinstance(data, dict) else {}

        def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
            value = data.get(key)
            return value if isinstance(value, kind) and not isinstance(value, bool) else default

        progress = cls(tail_lines=get("tail_lines", int, 20), line_chars=get("line_chars", int, 300))
        phase = data.get("phase")
        progress.phase = phase if phase in PHASES else "starting"
        progress.action = get("action", str, None)
        progress.tools_used = get("tools_used", int, 0)
        progress.tokens_in = get("tokens_in", int, 0)
        progress.tokens_out = get("tokens_out", int, 0)
        progress.cost_usd = _number(data.get("cost_usd"))
        progress.duration_s = _number(data.get("duration_s"))
        progress.session_id = get("session_id", str, None)
        progress.final_text = get("final_text", str, None)
        progress.is_error = data.get("is_error") is True
        progress.lines_seen = get("lines_seen", int, 0)
        for line in _list(data.get("tail")):
            if isinstance(line, str):
                progress.tail.append(clip(line, progress.line_chars))
        return progress
