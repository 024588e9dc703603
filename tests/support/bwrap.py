"""Where the sandbox tests find bubblewrap (tests/sandbox/install_bwrap.py puts it there), and a skip
with the reason when this host has none that works."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHED = Path(os.environ.get("SUPERSET_BWRAP_CACHE", Path.home() / ".cache" / "superset-bot" / "bwrap")) \
    / "usr" / "bin" / "bwrap"


def find_bwrap() -> tuple[str | None, str]:
    """(the bwrap to use, or None with why not)."""
    found = os.environ.get("SUPERSET_TEST_BWRAP") or (str(CACHED) if CACHED.is_file() else shutil.which("bwrap"))
    if not found:
        return None, "no bwrap: run `make sandbox-tools` (tests/sandbox/install_bwrap.py)"
    probe = subprocess.run([found, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
                           capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        return None, f"{found} does not work on this host: {probe.stderr.strip()[-200:]}"
    return found, ""


BWRAP, WHY_NOT = find_bwrap()
needs_bwrap = pytest.mark.skipif(BWRAP is None, reason=WHY_NOT or "no bwrap")
