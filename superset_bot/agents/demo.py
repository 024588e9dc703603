"""A scripted stand-in for a coding agent, so the demo preset works without any API key.

Run inside a git worktree: `python3 -m superset_bot.agents.demo "PROMPT"`. It prints a few progress
lines, appends the prompt to SUPERSET_DEMO.md and commits that, then writes
SUPERSET_DEMO_NOTES.md and leaves it uncommitted, so the review shows both a commit and a
working-tree change. A prompt containing "fail" makes it exit 1, to demo a failed task.
This is a separate program, not bot code, so plain blocking subprocess calls are fine here;
the prompt only ever travels as one argv element, never through a shell.
Set SUPERSET_DEMO_DELAY (seconds between lines, default 0.2) to speed it up in tests.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

DEMO_FILE = "SUPERSET_DEMO.md"
NOTES_FILE = "SUPERSET_DEMO_NOTES.md"
# Used only when the worktree has no git identity configured, so the demo still commits.
FALLBACK_IDENTITY = ("-c", "user.name=Superset Demo Agent", "-c", "user.email=demo-agent@superset.invalid")


def _delay() -> float:
    try:
        return min(max(float(os.environ.get("SUPERSET_DEMO_DELAY", "0.2")), 0.0), 0.3)
    except ValueError:
        return 0.2


def say(text: str) -> None:
    """Print one progress line now (stdout is a pipe or a log file, so flush)."""
    print(text, flush=True)
    time.sleep(_delay())


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def one_line(prompt: str, limit: int = 72) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prompt = " ".join(args).strip()
    if not prompt:
        print('usage: python3 -m superset_bot.agents.demo "PROMPT"  (run inside a git worktree)', file=sys.stderr)
        return 2
    cwd = Path.cwd()
    top = git(cwd, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        print(
            f"demo agent: {cwd} is not inside a git work tree; run me in a task's worktree.", file=sys.stderr
        )
        return 2
    root = Path(top.stdout.strip())

    say(f"Demo agent starting in {root.name}")
    say(f"Task: {one_line(prompt)}")
    tracked = git(root, "ls-files").stdout.splitlines()
    say(f"Reading the repository ({len(tracked)} tracked files)")

    if "fail" in prompt.lower():
        say("Planning the change…")
        print("Error: the demo agent was asked to fail (the prompt contains 'fail').", flush=True)
        return 1

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    demo = root / DEMO_FILE
    say(f"Editing {DEMO_FILE}")
    new_file = not demo.exists()
    with demo.open("a", encoding="utf-8") as fh:
        if new_file:
            fh.write("# Superset demo\n\nTasks the demo agent has worked on:\n\n")
        fh.write(f"- {stamp}: {one_line(prompt, 200)}\n")

    say(f"Committing {DEMO_FILE}")
    identity: tuple[str, ...] = ()
    if git(root, "config", "user.email").returncode != 0:
        identity = FALLBACK_IDENTITY
    git(root, "add", "--", DEMO_FILE)
    # --no-verify: the repository's own hooks are not the demo's business.
    commit = git(
        root, *identity, "commit", "--no-verify", "-q", "-m", f"demo: {one_line(prompt, 60)}", "--", DEMO_FILE
    )
    if commit.returncode != 0:
        print(f"Error: git commit failed: {(commit.stderr or commit.stdout).strip()}", flush=True)
        return 1
    sha = git(root, "rev-parse", "--short", "HEAD").stdout.strip()

    say(f"Writing {NOTES_FILE}")
    notes = root / NOTES_FILE
    with notes.open("a", encoding="utf-8") as fh:
        fh.write(
            f"Notes for: {one_line(prompt, 200)}\nThis file was left uncommitted on purpose, for review.\n\n"
        )

    print(f"Done: committed {DEMO_FILE} ({sha}) and left {NOTES_FILE} uncommitted for review.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
