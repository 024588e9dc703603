"""Scripted agent for a full disk. FILL=worktree: writes big.bin in its worktree until the disk is
full, then fails the way real tools do (the OSError on stderr, exit 1). FILL=output: prints
FILL_MIB mebibytes of output (for a run log on a small disk), then exits 0.
"""

import os
import sys

mode = os.environ.get("FILL", "worktree")
if mode == "worktree":
    chunk = b"x" * 65536
    written = 0
    try:
        with open("big.bin", "wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
                written += len(chunk)
    except OSError as exc:
        print(f"agent: wrote {written} bytes, then: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
line = b"y" * 99 + b"\n"
for _ in range(int(os.environ.get("FILL_MIB", "3")) * 1024 * 1024 // len(line)):
    sys.stdout.buffer.write(line)
sys.stdout.buffer.write(b"agent: all output written\n")
sys.stdout.buffer.flush()
