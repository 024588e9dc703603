"""Turn a coding agent's raw output lines into progress events.

Agents print very different things: plain text, Claude Code's `stream-json`, Codex's
`exec --json`, aider's chat transcript. The runner hands every output line to a parser from
`make_parser` (one module per format beside this one); front ends only ever see `AgentEvent`s
and the running totals in `Progress`. Output from an agent is untrusted and often surprising (a
new CLI version, a warning printed on stdout, a truncated line), so a parser never raises:
whatever it does not understand becomes one short line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from superset_bot.agents.formats.aider import AiderParser
from superset_bot.agents.formats.claude import ClaudeParser, claude_tool_action
from superset_bot.agents.formats.codex import CodexParser
from superset_bot.agents.formats.event import (
    EVENT_KINDS,
    AgentEvent,
    AgentParser,
    clean_line,
    clip,
    first_line,
)
from superset_bot.agents.formats.plain import PlainParser
from superset_bot.agents.formats.progress import PHASES, Progress
from superset_bot.domain.prices import Price

FORMATS = ("plain", "claude-stream-json", "codex-json", "aider")

_PARSERS: dict[str, type[AgentParser]] = {
    "plain": PlainParser,
    "claude-stream-json": ClaudeParser,
    "codex-json": CodexParser,
    "aider": AiderParser,
}

__all__ = [
    "EVENT_KINDS", "FORMATS", "PHASES", "AgentEvent", "AgentParser", "Progress", "claude_tool_action",
    "clean_line", "clip", "first_line", "make_parser",
]


def make_parser(fmt: str, *, cwd: str | None = None, carried: Mapping[str, Any] | None = None,
                price: Price | None = None) -> AgentParser:
    """Return a fresh, stateful parser for one agent run in output format `fmt`.

    `cwd` (the worktree) lets actions show paths relative to it; `carried` is what the previous
    run of the same session left in `Progress.carry`; `price` is the list price of the run's model,
    for a format that reports tokens but no cost (Codex's; the others report their own cost and
    ignore it). The parser never raises, whatever line it is given; call its `finish()` once after
    the last line.
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise ValueError(f"unknown agent output format {fmt!r}: use one of {', '.join(FORMATS)}")
    if parser is CodexParser:
        return CodexParser(cwd, carried, price=price)
    return parser(cwd, carried)
