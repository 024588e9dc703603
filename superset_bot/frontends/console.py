"""A terminal front end over the same engine: try the bot without a Slack workspace.

Commands are those of `/superset` (see superset_bot.domain.commands) plus `followup ID TEXT` and `quit`.
Progress is printed live as the engine publishes it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO

from superset_bot.domain.commands import CommandError, parse, usage_all
from superset_bot.domain.events import (
    EngineEvent,
    Milestone,
    OutputLines,
    ProgressChanged,
    QueuePosition,
    ReviewReady,
    StateChanged,
)
from superset_bot.engine.core import Engine, UserError, describe
from superset_bot.housekeeping.jobs import Digest, Housekeeper
from superset_bot.store import ACTIVE_STATES, REVIEWABLE_STATES
from superset_bot.units import format_duration, format_size

PREFIX = ""
CONSOLE_USER = "console"


def format_review(review: dict[str, Any], top: int = 10) -> list[str]:
    """The review as plain text lines: what changed, whether it merges, checks, cost."""
    lines = [
        f"{len(review['files'])} files changed, +{review['insertions']} -{review['deletions']}, "
        f"{review['commits']} commit{'s' if review['commits'] != 1 else ''} on {review['branch']}"
    ]
    for change in review["files"][:top]:
        counts = "binary" if change["binary"] else f"+{change['added']} -{change['deleted']}"
        name = f"{change['old_path']} -> {change['path']}" if change.get("old_path") else change["path"]
        lines.append(f"    {change['status']} {name} ({counts})")
    if len(review["files"]) > top:
        lines.append(f"    and {len(review['files']) - top} more")
    if review["clean"]:
        lines.append(f"Merges cleanly into {review['base_branch']}.")
    else:
        lines.append(f"Conflicts with {review['base_branch']} in: {', '.join(review['conflicts'])}")
    checks = review.get("checks")
    if checks:
        lines.append(f"Checks: {checks['summary']}")
        if not checks["passed"] and checks.get("failing_tail"):
            lines.extend("    " + line for line in checks["failing_tail"].splitlines()[-10:])
    facts = []
    if review.get("duration_s"):
        facts.append(f"took {format_duration(review['duration_s'])}")
    if review.get("cost_usd") is not None:
        facts.append(f"cost ${review['cost_usd']:.2f}")
    if review.get("tokens_in") or review.get("tokens_out"):
        facts.append(f"{review.get('tokens_in') or 0} tokens in / {review.get('tokens_out') or 0} out")
    if facts:
        lines.append("Agent " + ", ".join(facts) + ".")
    for denial in review.get("denials") or []:
        lines.append(f"Refused: {denial}")
    if review.get("reason"):
        lines.append(f"Note: the task {review['state']}: {review['reason']}")
    return lines


def format_digest(digest: Digest) -> list[str]:
    lines = []
    for title, tasks in (("Running", digest.running), ("Awaiting review (oldest first)", digest.awaiting),
                         ("Closed since the last digest", digest.closed), ("About to be pruned", digest.to_prune)):
        if tasks:
            lines.append(f"{title}:")
            lines.extend(f"  {describe(t)}" for t in tasks)
    usage = ", ".join(f"{name} {format_size(size)}" for name, size in sorted(digest.disk.items()))
    lines.append(f"Worktrees: {usage or 'none'}; free disk {format_size(digest.free_disk)}")
    return lines


class Console:
    """Parses console commands into engine calls and prints the engine's events."""

    def __init__(self, engine: Engine, out: TextIO = sys.stdout, show_output: bool = True) -> None:
        self.engine = engine
        self.housekeeper = Housekeeper(engine)
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
            action = event.progress.get("action")
            if action and action != self._actions.get(event.task.id):
                self.print(f"{tag} > {action}")
            self._actions[event.task.id] = action
        elif isinstance(event, ReviewReady):
            self.print(f"{tag} ready for review:")
            for line in format_review(event.review):
                self.print(f"{tag}   {line}")
            self.print(f"{tag}   merge {event.task.id} | discard {event.task.id} | diff {event.task.id} "
                       f"| followup {event.task.id} TEXT")

    async def handle(self, line: str) -> str | None:
        """Run one command line; returns the text to show (errors included), never raises."""
        try:
            command = parse(line, PREFIX)
        except CommandError as exc:
            return str(exc)
        engine = self.engine
        try:
            if command.name == "help":
                return usage_all(PREFIX).replace("`", "") + "\nquit - leave (agents keep running)"
            if command.name == "spawn":
                task = await engine.spawn(command.text, requester=CONSOLE_USER, **command.options)
                return f"[{task.id}] spawned in {task.repo} with preset {task.preset}"
            if command.name == "list":
                tasks = await engine.store.list_tasks(ACTIVE_STATES | REVIEWABLE_STATES)
                return "\n".join(describe(t) for t in tasks) or "No tasks running or awaiting review."
            if command.name == "status":
                return await self._status(command.task_id or "")
            if command.name == "diff":
                return await engine.diff(command.task_id or "") or "(no changes)"
            if command.name == "merge":
                task = await engine.merge(command.task_id or "", CONSOLE_USER)
                return f"[{task.id}] merged into {task.base_branch} as {str(task.merge_commit)[:10]}"
            if command.name == "discard":
                task = await engine.discard(command.task_id or "", CONSOLE_USER)
                return f"[{task.id}] discarded: worktree and branch removed"
            if command.name == "cancel":
                task = await engine.cancel(command.task_id or "", CONSOLE_USER)
                return f"[{task.id}] {task.state}"
            if command.name == "followup":
                task = await engine.followup(command.task_id or "", command.text, CONSOLE_USER)
                return f"[{task.id}] follow-up queued"
            if command.name == "presets":
                return "\n".join(f"{name}: {p.description}" for name, p in sorted(engine.presets.items())) \
                    or "No presets loaded."
            if command.name == "repos":
                return "\n".join(f"{name}: {path}" for name, path in engine.settings.repos.items()) \
                    or "No repos configured (SUPERSET_REPOS)."
            if command.name == "prune":
                report = await self.housekeeper.prune(dry_run=command.dry_run, actor=CONSOLE_USER)
                return "\n".join(report.lines())
            if command.name == "digest":
                digest = await self.housekeeper.digest(force=True)
                return "\n".join(format_digest(digest)) if digest else "Nothing to report."
            return f"`{command.name}` is not available in the console."
        except UserError as exc:
            return str(exc)

    async def _status(self, task_id: str) -> str:
        task = await self.engine.get(task_id)
        lines = [describe(task), f"branch: {task.branch or '-'} (base {task.base_branch or 'default'})"]
        if task.worktree:
            lines.append(f"worktree: {task.worktree}")
        position = self.engine.queue_position(task.id)
        if position:
            lines.append(f"queue position: {position}")
        if task.reason:
            lines.append(f"reason: {task.reason}")
        return "\n".join(lines)


async def run_console(engine: Engine, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout,
                      read_line: Callable[[], str] | None = None) -> None:
    """Read commands until EOF or `quit`; at EOF wait for running tasks to settle first."""
    console = Console(engine, out)
    unsubscribe = engine.subscribe(console.on_event)
    reader = read_line or stdin.readline
    console.print("superset-bot console. Type `help` for commands, `quit` to leave.")
    await engine.start()  # subscribed first: tasks recovered from a previous run are shown too
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
                answer = await console.handle(line)
                if answer:
                    console.print(answer)
    finally:
        unsubscribe()
