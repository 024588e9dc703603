"""Scripted agent for security tests: prints pings and secrets, names files after them, commits.

Its prompt (and a follow-up's) arrives as one argv element; it writes what it got to PROMPTS.txt
so a test can compare it byte for byte with what was typed.
"""

from __future__ import annotations

import os
import subprocess
import sys

PINGS = "<!channel> <!here> <!everyone> <@U123> <!subteam^S1> <#C999> <https://evil.example|click>"


def main() -> int:
    prompt = sys.argv[1] if len(sys.argv) > 1 else ""
    with open("PROMPTS.txt", "a") as fh:
        fh.write(prompt + "\n\x00\n")
    secrets = " ".join(f"{name}={os.environ.get(name, '')}" for name in
                       ("MY_API_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"))
    print(f"agent says {PINGS}", flush=True)
    print(f"env dump: {secrets}", flush=True)
    with open("pings.txt", "a") as fh:  # appended, so each run (a follow-up too) has something to commit
        fh.write(PINGS + "\n")
    subprocess.run(["git", "add", "pings.txt"], check=True, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", f"agent {PINGS}"], check=True, capture_output=True)
    print(f"done {PINGS}", flush=True)
    return int(os.environ.get("AGENT_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
