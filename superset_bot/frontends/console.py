"""A terminal front end over the same engine: try the bot without a Slack workspace.

Commands are those of `/superset` (see superset_bot.domain.commands) plus `followup ID TEXT` and `quit`.
Progress is printed live as the engine publishes it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TextIO

from superset_bot.composition import Runtime
from superset_bot.domain.events import (
    EngineEvent,
    Milestone,
    OutputLines,
    ProgressChanged,
    QueuePosition,
    RaceChanged,
    ReviewReady,
    ReviewRefreshed,
    StateChanged,
)
from superset_bot.domain.prices import estimate_label
from superset_bot.domain.review import Review
from superset_bot.housekeeping.jobs import Digest
from superset_bot.service import Caller, Service
from superset_bot.service.plain import answer
from superset_bot.service.results import DigestNow, Help
from superset_bot.units import format_duration

PREFIX = ""
CONSOLE_USER = "console"


def format_review(review: Review, top: int = 10) -> list[str]:
    """The review as plain text lines: what changed, whether it merges, checks, cost."""
    lines = [
        f"{len(review.files)} files changed, +{review.insertions} -{review.deletions}, "
        f"{review.commits} commit{'s' if review.commits != 1 else ''} on {review.branch}"
    ]
    for change in review.files[:top]:
        counts = "binary" if change["binary"] else f"+{change['added']} -{change['deleted']}"
        name = f"{change['old_path']} -> {change['path']}" if change.get("old_path") else change["path"]
        lines.append(f"    {change['status']} {name} ({counts})")
    if len(review.files) > top:
        lines.append(f"    and {len(review.files) - top} more")
    if review.clean:
        lines.append(f"Merges cleanly into {review.base_branch}.")
    else:
        lines.append(f"Conflicts with {review.base_branch} in: {', '.join(review.conflicts)}")
    checks = review.checks
    if checks:
        lines.append(f"Checks: {checks['summary']}")
        if not checks["passed"] and checks.get("failing_tail"):
            lines.extend("    " + line for line in checks["failing_tail"].splitlines()[-10:])
    facts = []
    if review.duration_s:
        facts.append(f"took {format_duration(review.duration_s)}")
    if review.cost_usd is not None:
        estimate = f" ({estimate_label(review.cost_estimated_from)})" if review.cost_estimated_from else ""
        facts.append(f"cost ${review.cost_usd:.2f}{estimate}")
    if review.tokens_in or review.tokens_out:
        facts.append(f"{review.tokens_in or 0} tokens in / {review.tokens_out or 0} out")
    if facts:
        lines.append("Agent " + ", ".join(facts) + ".")
    for denial in review.denials:
        lines.append(f"Refused: {denial}")
    if review.reason:
        lines.append(f"Note: the task {review.state}: {review.reason}")
    return lines


class Console:
    """Turns console lines into service calls and prints the engine's events."""

    def __init__(self, service: Service, out: TextIO = sys.stdout, show_output: bool = True) -> None:
        self.service = service  # the composition root's (`open_runtime(..., operators={CONSOLE_USER})`)
        self.out = out
        self.show_output = show_output
        self._actions: dict[str, str | None] = {}

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def on_event(self, event: EngineEvent) -> None:
        tag = f"[{event.task.id}]"
        if isinstance(event, StateChanged):
            reason = f": {event.reason}" if event.reason else ""
            self.print(f"{tag} {event.task.state}{reason}")
        elif isinstance(event, QueuePosition):
            self.print(f"{tag} waiting for a free agent slot (position {event.position})")
        elif isinstance(event, Milestone):
            self.print(f"{tag} {event.text}")
        elif isinstance(event, OutputLines) and self.show_output:
            marker = "|" if event.source == "agent" else f"{event.source}|"
            if event.dropped:
                self.print(f"{tag} {marker} ... {event.dropped} lines skipped ...")
            for line in event.lines:
                self.print(f"{tag} {marker} {line}")
        elif isinstance(event, ProgressChanged):
            action = event.progress.action
            if action and action != self._actions.get(event.task.id):
                self.print(f"{tag} > {action}")
            self._actions[event.task.id] = action
        elif isinstance(event, RaceChanged):
            race = event.race
            what = {"open": f"open; attempts {', '.join(race.labels)}: compare them with `compare {race.id}`",
                    "picking": f"attempt {event.task.race_label} is being picked",
                    "picked": f"attempt {event.task.race_label} picked by {race.closed_by}; the others discarded",
                    "discarding": "every attempt is being discarded",
                    "discarded": "no attempt was kept"}.get(str(race.state), str(race.state))
            self.print(f"[race {race.id}] {what}")
        elif isinstance(event, ReviewRefreshed):
            base = event.review.base_branch
            moved = f"{base} moved {event.review.base_moved} commit(s) since it started" \
                if event.review.base_moved else f"{base} moved"
            verdict = "merges cleanly" if event.review.clean else \
                f"no longer merges cleanly; `update {event.task.id}` brings {base} in"
            self.print(f"{tag} review updated: {moved}; it {verdict}")
        elif isinstance(event, ReviewReady):
            self.print(f"{tag} ready for review:")
            for line in format_review(event.review):
                self.print(f"{tag}   {line}")
            pick = f" (picks attempt {event.task.race_label}: the race's others are discarded)" \
                if event.task.race_label else ""
            self.print(f"{tag}   merge {event.task.id}{pick} | discard {event.task.id} | diff {event.task.id} "
                       f"| followup {event.task.id} TEXT")

    async def handle(self, line: str) -> str:
        """Run one command line; returns the text to show (errors included), never raises."""
        result = await self.service.command(Caller(CONSOLE_USER, prefix=PREFIX), line)
        text = answer(result, PREFIX, local=True)
        if isinstance(result, Help):
            text += "\nquit - leave (agents keep running)"
        return text

    async def print_digest(self, digest: Digest) -> None:
        """The scheduled digest, when the console runs long enough to see one."""
        self.print(answer(DigestNow(digest), PREFIX, local=True))


async def run_console(runtime: Runtime, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout,
                      read_line: Callable[[], str] | None = None) -> None:
    """Read commands until EOF or `quit`; at EOF wait for running tasks to settle first."""
    engine = runtime.engine
    console = Console(runtime.service, out)
    unsubscribe = engine.subscribe(console.on_event)
    runtime.housekeeper.digest_sinks.append(console.print_digest)
    reader = read_line or stdin.readline
    console.print("superset-bot console. Type `help` for commands, `quit` to leave.")
    await runtime.start()  # subscribed first: tasks recovered from a previous run are shown too
    try:
        while True:
            line = await asyncio.to_thread(reader)
            if not line:
                await engine.wait_idle()
                break
            line = line.strip()
            if line in ("quit", "exit"):
                break
            if line:
                text = await console.handle(line)
                if text:
                    console.print(text)
    finally:
        unsubscribe()
