"""What every agent parser shares: the `AgentEvent` model, the parser base class, text helpers.

Token accounting (`AgentEvent.tokens_in` / `tokens_out`):
  * kind "usage": increments since the previous usage event of this parser;
  * kind "result": totals for the whole run, which replace the running sums in `Progress`.
"tokens_in" counts every input token the model processed, cached ones included.

Honest outcomes travel on events too:
  * kind "denied": the agent's permissions (or its sandbox) refused an action; `denied` names it
    ("Bash: python3 -m pytest") and `text` says how to grant it.
  * kind "retry": the agent retries a failed model API call; `api_status` is the HTTP status.
  * `fatal`: the run cannot succeed (the model API refused the credentials): the engine stops
    the agent at once instead of waiting out its retries, and the task fails with `text`.
  * `cost_estimated_from`: `cost_usd` is not the agent's figure but its tokens at the list price of
    this model (Codex reports no cost; see `domain.prices`), and surfaces say so.
  * `carry`: values a parser wants back on the next run of the same session (for example
    Codex's thread-wide token totals); `Progress` keeps them and the engine hands them to the
    parser of the follow-up run.
"""

from __future__ import annotations

import collections
import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

EVENT_KINDS = ("line", "text", "tool", "result", "session", "error", "usage", "denied", "retry")

LINE_MAX = 500  # chars kept of one event line
TEXT_LINES_MAX = 6  # lines kept of one block of assistant text; the rest becomes "…"
ACTION_ARG_MAX = 60  # chars of a command / pattern shown in an action phrase
FINAL_TEXT_MAX = 20_000  # chars kept of the agent's final answer
JSON_LINE_MAX = 32 * 1024 * 1024  # longer lines are not even decoded
SEEN_IDS_MAX = 512  # per-parser memory of message / item ids

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SHELLS = {"bash", "sh", "zsh", "dash", "fish", "pwsh", "powershell"}


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
    cost_estimated_from: str | None = None  # the model whose list price cost_usd is estimated at; None: reported
    duration_s: float | None = None
    is_error: bool = False  # the run (or a turn of it) failed, not a recoverable tool error
    final_text: str | None = None  # the agent's final answer, for the review
    denied: str | None = None  # kind "denied": what was refused, e.g. "Bash: python3 -m pytest"
    api_status: int | None = None  # HTTP status of a failed model API call ("retry", "error", "result")
    fatal: bool = False  # the run cannot succeed: stop the agent now and fail the task with `text`
    carry: dict[str, Any] | None = None  # handed to the parser of the next run in this session


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


def first_line(text: str, limit: int = LINE_MAX) -> str:
    for line in text[: max(limit * 8, 4096)].splitlines():
        cleaned = clean_line(line, limit)
        if cleaned.strip():
            return cleaned
    return ""


def text_lines(text: str, max_lines: int = TEXT_LINES_MAX) -> list[str]:
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


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_count(value: Any) -> int | None:
    """A non-negative token count, or None for anything else (bools, NaN, strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def sum_counts(*values: Any) -> int | None:
    counts = [c for c in (as_count(v) for v in values) if c is not None]
    return sum(counts) if counts else None


def rel_path(path: str, cwd: str | None) -> str:
    """`path` relative to the worktree when it lies inside it, else unchanged."""
    if not cwd or not path.startswith("/"):
        return path
    try:
        return str(PurePosixPath(path).relative_to(PurePosixPath(cwd))) or "."
    except ValueError:
        return path


def unwrap_shell(command: Any) -> str:
    """The command a person would recognise: `bash -lc 'pytest -x'` -> `pytest -x`."""
    if isinstance(command, list):
        parts = [p for p in command if isinstance(p, str)]
        if not parts:
            return ""
        if len(parts) >= 2 and parts[0].rsplit("/", 1)[-1] in SHELLS:
            return parts[-1]  # ["bash", "-lc", "pytest -x"]
        return " ".join(parts)
    if not isinstance(command, str):
        return ""
    if len(command) < 4096:
        try:
            parts = shlex.split(command)
        except ValueError:
            return command
        if len(parts) == 3 and parts[0].rsplit("/", 1)[-1] in SHELLS and parts[1] in ("-c", "-lc"):
            return parts[2]
    return command


def action_arg(text: str) -> str:
    return clip(first_line(text, ACTION_ARG_MAX * 2), ACTION_ARG_MAX)


def line_event(line: str) -> list[AgentEvent]:
    text = clean_line(line)
    return [AgentEvent(kind="line", text=text)] if text.strip() else []


def as_text(line: object) -> str:
    if isinstance(line, str):
        return line
    if isinstance(line, bytes | bytearray):
        return bytes(line).decode("utf-8", errors="replace")
    return str(line)


class AgentParser:
    """Shared never-raise wrapper: any surprise degrades to a plain line.

    `cwd` is the worktree (actions show paths relative to it); `carried` is what the previous
    run of this session put in `AgentEvent.carry` (empty for a first run). A subclass parses in
    `parse(line)` and may report what only the end of the output tells in `end()`.
    """

    def __init__(self, cwd: str | None, carried: Mapping[str, Any] | None = None) -> None:
        self.cwd = cwd
        self.carried: dict[str, Any] = dict(carried or {})

    def finish(self) -> list[AgentEvent]:
        """Events that only the end of the output can tell (called once, after the last line)."""
        try:
            return self.end()
        except Exception:
            return []

    def end(self) -> list[AgentEvent]:
        return []

    def __call__(self, line: str) -> list[AgentEvent]:
        try:
            text = as_text(line)
        except Exception:
            return []
        try:
            return self.parse(text)
        except Exception:
            try:
                return line_event(text)
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


def remember(seen: collections.OrderedDict[str, Any], key: str, value: Any) -> None:
    seen[key] = value
    seen.move_to_end(key)
    while len(seen) > SEEN_IDS_MAX:
        seen.popitem(last=False)
