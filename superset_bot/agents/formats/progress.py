"""Running totals and the tail of one agent run, for status cards and reviews."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from superset_bot.agents.formats.event import (
    TEXT_LINES_MAX,
    AgentEvent,
    as_list,
    as_number,
    clip,
)

PHASES = ("starting", "working", "finishing", "done")
DENIALS_MAX = 10  # distinct refused actions kept for the status card and the review


@dataclass
class Progress:
    """Running totals and a bounded tail of one task's agent output, for status cards.

    `Progress(tail_lines=20, line_chars=300)`. Phases: "starting" until the first event,
    "working", "finishing" once the agent reported its result (the process may still be
    exiting), "done" after `mark_done()`.

    `denials` are the distinct actions the agent's permissions or sandbox refused, each a
    sentence saying how to grant it; `error` is why the run failed in the agent's own terms
    (an API error, a failed result), `fatal` is set when that failure means the run cannot
    succeed and the agent should be stopped. `carry` is what the parser wants the next run of
    this session to get; `carried` is what this run got.
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
    denials: list[str] = field(default_factory=list)
    error: str | None = None
    fatal: bool = False
    carry: dict[str, Any] = field(default_factory=dict)
    carried: dict[str, Any] = field(default_factory=dict)
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
            self.is_error = event.is_error or self.fatal
            if event.is_error and event.text:
                self.error = clip(event.text, self.line_chars)
            self.action = None
            if self.phase != "done":
                self.phase = "finishing"
        elif event.kind == "denied":
            said = clip(event.text or f"denied: {event.denied}", self.line_chars)
            if said not in self.denials and len(self.denials) < DENIALS_MAX:
                self.denials.append(said)
        if event.fatal and not self.fatal:
            self.fatal = True
            self.is_error = True
            self.error = clip(event.text or "the agent's model API failed", self.line_chars)
        if event.carry:
            self.carry.update(event.carry)
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
            "denials": list(self.denials),
            "error": self.error,
            "fatal": self.fatal,
            "carry": dict(self.carry),
            "carried": dict(self.carried),
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
        progress.cost_usd = as_number(data.get("cost_usd"))
        progress.duration_s = as_number(data.get("duration_s"))
        progress.session_id = get("session_id", str, None)
        progress.final_text = get("final_text", str, None)
        progress.is_error = data.get("is_error") is True
        progress.lines_seen = get("lines_seen", int, 0)
        progress.denials = [clip(d, progress.line_chars) for d in as_list(data.get("denials"))
                            if isinstance(d, str)][:DENIALS_MAX]
        progress.error = get("error", str, None)
        progress.fatal = data.get("fatal") is True
        for key in ("carry", "carried"):
            value = data.get(key)
            setattr(progress, key, dict(value) if isinstance(value, dict) else {})
        for line in as_list(data.get("tail")):
            if isinstance(line, str):
                progress.tail.append(clip(line, progress.line_chars))
        return progress
