"""Put bubblewrap's `bwrap` where the sandbox tests find it, without installing it on PATH.

Debian 12's bubblewrap 0.8 has no `--argv0`; with it on PATH, Codex 0.171's own sandbox takes its
fallback for old bwraps and fails every command ("execvp codex-linux-sandbox"). So the package is
unpacked into ~/.cache/superset-bot/bwrap (SUPERSET_AGENT_CACHE's sibling) and the tests point
SUPERSET_BWRAP at it; an installed bwrap of 0.9 or later on PATH is used as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("SUPERSET_BWRAP_CACHE", Path.home() / ".cache" / "superset-bot" / "bwrap"))
BINARY = CACHE / "usr" / "bin" / "bwrap"


def works(bwrap: str) -> bool:
    try:
        return subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main() -> int:
    if BINARY.is_file() and works(str(BINARY)):
        print(BINARY)
        return 0
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        print("no apt-get/dpkg here: the bwrap sandbox tests will be skipped", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", "bubblewrap"], cwd=tmp, capture_output=True, text=True)
        if got.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            got = subprocess.run(["apt-get", "download", "bubblewrap"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("bubblewrap_*.deb"))
        if got.returncode != 0 or not debs:
            print(f"could not download bubblewrap: {got.stderr.strip()[-300:]}", file=sys.stderr)
            return 1 if os.environ.get("CI") else 0
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(debs[0]), str(CACHE)], check=True)
    if not works(str(BINARY)):
        print(f"{BINARY} does not work on this host (user namespaces?): the sandbox tests will say why",
              file=sys.stderr)
    print(BINARY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
