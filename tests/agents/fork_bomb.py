"""Scripted agent: keeps forking sleeping children, up to argv[1] of them (a bounded fork bomb); a fork
the kernel refuses (pids.max) is retried, as a runaway build would."""

import os
import sys
import time

wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 200
made = 0
deadline = time.monotonic() + 60
while made < wanted and time.monotonic() < deadline:
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    except BlockingIOError:  # EAGAIN: over the process limit
        time.sleep(0.01)
print(f"made {made}", flush=True)
time.sleep(60)
