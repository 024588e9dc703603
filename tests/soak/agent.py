"""The soak's agent: a real program run by the real runner in a real worktree, finishing in about a second.

The instruction it acts on is the last line of its prompt (a follow-up prompt ends with the new
instruction) and carries `[soak KEY MODE]`: KEY names the file it writes, so merges of different
tasks never conflict unless MODE asks for it.

  edit      append a line to soak/KEY.txt and commit it (each run adds one line)
  noop      change nothing (a merge finds nothing to merge)
  conflict  rewrite shared.txt and commit (a second such merge conflicts)
  fail      exit 3
  slow      print a tick every 0.1 s for a minute (to be cancelled or discarded while running)
  stream    print a line every 0.05 s for SOAK_SECONDS seconds, then edit (many progress events)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

MARK = re.compile(r"\[soak (\S+) (\w+)\]")


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True)


def edit(key: str, line: str) -> None:
    path = Path("soak") / f"{key}.txt"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as fh:
        fh.write(line + "\n")
    git("add", str(path))
    git("commit", "-q", "-m", f"soak agent: {line}")


def main() -> int:
    prompt = sys.argv[1] if len(sys.argv) > 1 else ""
    lines = [line for line in prompt.strip().splitlines() if MARK.search(line)]
    found = MARK.search(lines[-1]) if lines else None
    if found is None:
        print("soak agent: no [soak KEY MODE] in the prompt", flush=True)
        return 2
    key, mode = found.groups()
    print(f"soak agent: task {key} mode {mode}", flush=True)
    if mode == "slow":
        for i in range(600):
            print(f"tick {i}", flush=True)
            time.sleep(0.1)
        return 0
    if mode == "stream":
        until = time.monotonic() + float(os.environ.get("SOAK_SECONDS", "5"))
        i = 0
        while time.monotonic() < until:
            i += 1
            print(f"Editing soak/{key}.txt step {i}", flush=True)
            time.sleep(0.05)
        edit(key, f"streamed {i} lines")
        return 0
    for step in range(3):
        print(f"Reading file{step}.py", flush=True)
        time.sleep(0.1)
    if mode == "fail":
        print("soak agent: giving up", flush=True)
        return 3
    if mode == "noop":
        return 0
    if mode == "conflict":
        Path("shared.txt").write_text(f"rewritten by {key}\n")
        git("commit", "-qam", f"soak agent: {key} rewrites shared.txt")
        return 0
    if mode == "edit":
        edit(key, f"run of {key}: {lines[-1].strip()[:80]}")
        return 0
    print(f"soak agent: unknown mode {mode}", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
