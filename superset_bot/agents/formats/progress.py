"""Running totals and the tail of one agent run, folded from its events; `snapshot()` is what
the engine publishes and stores (`domain.progress.ProgressSnapshot`)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from superset_bot.agents.formats.event import TEXT_LINES_MAX, AgentEvent, clip
from superset_bot.domain.progress import (
    DENIALS_MAX,
    LINE_CHARS,
    LINE_CHARS_MAX,
    PHASES,
    TAIL_LINES,
    TAIL_LINES_MAX,
    ProgressSnapshot,
)

__all__ = ["DENIALS_MAX", "PHASES", "Progress"]


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
    this session to get; `carried` is what this run got. `cost_estimated_from` names the model
    whose list price `cost_usd` was estimated at, for an agent that reports tokens only.
    """

    tail_lines: int = TAIL_LINES
    line_chars: int = LINE_CHARS
    phase: str = "starting"
    action: str | None = None
    tools_used: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    cost_estimated_from: str | None = None  # cost_usd is this model's list price for the tokens, not reported
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
        self.tail_lines = min(max(1, int(self.tail_lines)), TAIL_LINES_MAX)
        self.line_chars = min(max(2, int(self.line_chars)), LINE_CHARS_MAX)
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
            self.cost_estimated_from = event.cost_estimated_from
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

    def snapshot(self) -> ProgressSnapshot:
        """A frozen copy, for status cards and persistence (`ProgressSnapshot.to_dict` is the JSON)."""
        return ProgressSnapshot(
            phase=self.phase, action=self.action, tools_used=self.tools_used, tokens_in=self.tokens_in,
            tokens_out=self.tokens_out, cost_usd=self.cost_usd, cost_estimated_from=self.cost_estimated_from,
            duration_s=self.duration_s,
            session_id=self.session_id, final_text=self.final_text, is_error=self.is_error,
            lines_seen=self.lines_seen, denials=tuple(self.denials), error=self.error, fatal=self.fatal,
            carry=dict(self.carry), carried=dict(self.carried), tail=tuple(self.tail),
            tail_lines=self.tail_lines, line_chars=self.line_chars,
        )

    @classmethod
    def from_snapshot(cls, snapshot: ProgressSnapshot) -> Progress:
        """Rebuild a Progress from a snapshot (e.g. `Task.progress_snapshot()` after a bot restart)."""
        progress = cls(tail_lines=snapshot.tail_lines, line_chars=snapshot.line_chars)
        progress.phase = snapshot.phase
        progress.action = snapshot.action
        progress.tools_used = snapshot.tools_used
        progress.tokens_in = snapshot.tokens_in
        progress.tokens_out = snapshot.tokens_out
        progress.cost_usd = snapshot.cost_usd
        progress.cost_estimated_from = snapshot.cost_estimated_from
        progress.duration_s = snapshot.duration_s
        progress.session_id = snapshot.session_id
        progress.final_text = snapshot.final_text
        progress.is_error = snapshot.is_error
        progress.lines_seen = snapshot.lines_seen
        progress.denials = [clip(d, progress.line_chars) for d in snapshot.denials][:DENIALS_MAX]
        progress.error = snapshot.error
        progress.fatal = snapshot.fatal
        progress.carry = dict(snapshot.carry)
        progress.carried = dict(snapshot.carried)
        progress.tail.extend(clip(line, progress.line_chars) for line in snapshot.tail)
        return progress
