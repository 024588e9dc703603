"""Bench agent: stamps its start time, then prints BENCH_RATE lines/s until BENCH_SECONDS pass.

The stamp (wall clock, written before anything else) lets the spawn benchmark measure
"command received -> agent process running" without waiting for the engine's output batching.
"""

import os
import sys
import time

started = time.time()
stamp_dir = os.environ.get("BENCH_STAMP_DIR")
if stamp_dir:
    with open(os.path.join(stamp_dir, os.environ.get("SUPERSET_TASK_ID", "x")), "w") as fh:
        fh.write(repr(started))
print("agent: started", flush=True)
rate = float(os.environ.get("BENCH_RATE", "0"))
seconds = float(os.environ.get("BENCH_SECONDS", "0"))
if rate <= 0:
    sys.exit(0)
out = sys.stdout
batch = max(1, int(rate / 50))  # write in 20 ms batches
line = 0
end = started + seconds
while time.time() < end:
    tick = time.time()
    for _ in range(batch):
        line += 1
        out.write(f"line {line}: working on step {line % 97} of the plan, all fine so far\n")
    out.flush()
    pause = batch / rate - (time.time() - tick)
    if pause > 0:
        time.sleep(pause)
print("agent: done", flush=True)
