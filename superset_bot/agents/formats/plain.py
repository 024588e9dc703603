"""Agents that print plain text: every non-blank line is one event."""

from __future__ import annotations

from superset_bot.agents.formats.event import (
    AgentEvent,
    AgentParser,
    line_event,
)


class PlainParser(AgentParser):
    def parse(self, line: str) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for part in line.splitlines():
            events.extend(line_event(part))
        return events
