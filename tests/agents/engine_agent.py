"""A scripted agent for engine tests; AGENT_MODE (from the preset's env) picks its behaviour.

It is a real program run by the real runner in a real worktree, like any agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True)


def main() -> int:
    prompt = sys.argv[1] if len(sys.argv) > 1 else ""
    mode = os.environ.get("AGENT_MODE", "edit")
    print(f"agent: mode={mode} prompt_chars={len(prompt)}", flush=True)
    if mode == "edit":
        Path("src").mkdir(exist_ok=True)
        Path("src/feature.py").write_text(f"# {prompt[:60]}\nVALUE = 1\n")
        git("add", "src/feature.py")
        git("commit", "-q", "-m", "agent: add feature")
        print("Editing src/feature.py", flush=True)
        Path("NOTES.md").write_text("left uncommitted by the agent\n")
        print("agent: done", flush=True)
        return 0
    if mode == "followup":
        # each run appends the instruction it got, so a test can see both runs in one worktree
        with open("RUNS.md", "a") as fh:
            fh.write(prompt.splitlines()[-1][:80] + "\n")
        print("agent: recorded run", flush=True)
        return 0
    if mode == "gated":  # commits one line per run; a prompt naming "gate" waits for GATE_FILE first
        if "gate" in prompt:
            deadline = time.monotonic() + 60
            while not Path(os.environ["GATE_FILE"]).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        with open("RUNS.md", "a") as fh:
            fh.write(prompt.splitlines()[-1][:80] + "\n")
        git("add", "RUNS.md")
        git("commit", "-q", "-m", "agent: one more run")
        return 0
    if mode == "escape":  # tries everything a sandbox must refuse, then does its own work
        for what, target in (("checkout", os.path.join(os.environ["SUPERSET_ROOT_PATH"], "escaped.txt")),
                             ("other worktree", os.path.join(os.environ["OTHER_WORKTREE"], "escaped.txt")),
                             ("database", os.environ["BOT_DB"]),
                             ("ssh", os.path.expanduser("~/.ssh/authorized_keys")),
                             ("outside", os.environ["OUTSIDE_FILE"])):
            try:
                with open(target, "a") as fh:
                    fh.write("escaped\n")
                print(f"ESCAPED: wrote {what}", flush=True)
            except OSError as exc:
                print(f"refused: {what}: {exc.strerror}", flush=True)
        try:
            print(f"ESCAPED: read ssh key {len(Path(os.path.expanduser('~/.ssh/id_ed25519')).read_text())}", flush=True)
        except OSError as exc:
            print(f"refused: ssh key: {exc.strerror}", flush=True)
        for ref in ("refs/heads/main", os.environ.get("OTHER_BRANCH", "")):
            done = subprocess.run(["git", "update-ref", ref, "HEAD"], capture_output=True)
            print(f"{'ESCAPED: moved' if done.returncode == 0 else 'refused: move'} {ref}", flush=True)
        # the bot commits what is left through HEAD after the agent: HEAD must stay on the task's branch
        done = subprocess.run(["git", "symbolic-ref", "HEAD", "refs/heads/main"], capture_output=True)
        print(f"{'ESCAPED: repointed' if done.returncode == 0 else 'refused: repoint'} HEAD", flush=True)
        try:
            with open(".git", "a") as fh:  # the worktree's link to its repository
                fh.write("\n")
            print("ESCAPED: wrote .git", flush=True)
        except OSError as exc:
            print(f"refused: .git: {exc.strerror}", flush=True)
        port = os.environ.get("LISTENER_PORT")
        if port:
            import socket
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=3).close()
                print("ESCAPED: network", flush=True)
            except OSError as exc:
                print(f"refused: network: {exc.strerror or exc}", flush=True)
        Path("src").mkdir(exist_ok=True)
        Path("src/feature.py").write_text("VALUE = 1\n")
        import tempfile
        Path(tempfile.gettempdir(), "scratch.txt").write_text("private tmp\n")
        git("add", "src/feature.py")
        git("commit", "-q", "-m", "agent: its own work, in the sandbox")
        print("agent: committed", flush=True)
        return 0
    if mode == "conflict":
        Path(os.environ["CONFLICT_FILE"]).write_text(f"agent version: {prompt[:40]}\n")
        git("commit", "-qam", "agent: change shared file")
        return 0
    if mode == "sleep":
        for i in range(100000):
            print(f"tick {i}", flush=True)
            time.sleep(0.1)
        return 0
    if mode == "count":
        total = int(os.environ.get("AGENT_LINES", "300"))
        for i in range(1, total + 1):
            print(f"line {i} of {total}", flush=True)
            time.sleep(float(os.environ.get("AGENT_DELAY", "0.01")))
        Path("counted.txt").write_text(str(total))
        return 0
    if mode == "fail":
        print("agent: something went wrong", flush=True)
        return 3
    if mode == "secret":
        print(f"the token is {os.environ.get('MY_API_TOKEN')} and the slack one is {os.environ.get('SLACK_BOT_TOKEN')}",
              flush=True)
        return 0
    if mode == "leak":  # writes its key into a committed file, as careless agents do
        Path("config.py").write_text(f"API_TOKEN = {os.environ.get('MY_API_TOKEN')!r}\n")
        git("add", "config.py")
        git("commit", "-q", "-m", "agent: hard-code the token")
        return 0
    if mode == "memory":
        blocks = []
        for _ in range(64):
            blocks.append(bytearray(16 * 1024 * 1024))  # touched: bytearray zero-fills
            time.sleep(0.02)
        return 0
    if mode == "concurrency":
        log = os.environ["CONCURRENCY_LOG"]
        with open(log, "a") as fh:
            fh.write(f"start {time.monotonic()}\n")
        time.sleep(float(os.environ.get("AGENT_SLEEP", "0.3")))
        with open(log, "a") as fh:
            fh.write(f"end {time.monotonic()}\n")
        Path("work.txt").write_text(prompt)
        return 0
    print(f"unknown mode {mode}", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
