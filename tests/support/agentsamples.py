"""Running agent output, recorded (tests/samples/) or given, through a parser and Progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from superset_bot.agents.formats import AgentEvent, Progress, make_parser

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run_lines(fmt: str, lines: Iterable[str], *, cwd: str | None = None,
              carried: Mapping[str, Any] | None = None) -> tuple[list[AgentEvent], Progress]:
    """The events of parser `fmt` over `lines` then its `finish()`, and the Progress they make."""
    parse = make_parser(fmt, cwd=cwd, carried=carried)
    progress = Progress(carried=dict(carried or {}))
    events: list[AgentEvent] = []
    for line in lines:
        events.extend(parse(line))
    events.extend(parse.finish())
    for event in events:
        progress.apply(event)
    return events, progress


def run_sample(fmt: str, name: str, *, cwd: str | None = None,
               carried: Mapping[str, Any] | None = None) -> tuple[list[AgentEvent], Progress]:
    """`run_lines` over tests/samples/`name`, line endings kept as the engine reads them."""
    return run_lines(fmt, (SAMPLES / name).read_text().splitlines(keepends=True), cwd=cwd, carried=carried)
