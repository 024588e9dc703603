"""Bench agent: stamps its start time, then prints BENCH_RATE lines/s until BENCH_SECONDS pass
(BENCH_SECONDS=prompt: the N of "for N seconds" in its prompt, so each task can run its own time).
With BENCH_GO_FILE those seconds count from that file's mtime instead (it streams until then, at most
BENCH_GO_TIMEOUT seconds, default 600), so many agents can be busy together before any ends.

The stamp (wall clock, written before anything else) lets the spawn benchmark measure
"command received -> agent process running" without waiting for the engine's output batching.
"""

import os
import re
import sys
import time

started = time.time()
stamp_dir = os.environ.get("BENCH_STAMP_DIR")
if stamp_dir:
    with open(os.path.join(stamp_dir, os.environ.get("SUPERSET_TASK_ID", "x")), "w") as fh:
        fh.write(repr(started))
print("agent: started", flush=True)
rate = float(os.environ.get("BENCH_RATE", "0"))
seconds_env = os.environ.get("BENCH_SECONDS", "0")
if seconds_env == "prompt":
    found = re.search(r"for ([0-9.]+) seconds", " ".join(sys.argv[1:]))
    seconds = float(found.group(1)) if found else 0.0
else:
    seconds = float(seconds_env)
if rate <= 0:
    sys.exit(0)
out = sys.stdout
batch = max(1, int(rate / 50))  # write in 20 ms batches
line = 0
go_file = os.environ.get("BENCH_GO_FILE")
end = started + (float(os.environ.get("BENCH_GO_TIMEOUT", "600")) if go_file else seconds)
next_look = 0.0
while time.time() < end:
    tick = time.time()
    if go_file and tick >= next_look:
        next_look = tick + 0.2
        try:
            end = min(end, os.stat(go_file).st_mtime + seconds)
            go_file = None
        except FileNotFoundError:
            pass
    for _ in range(batch):
        line += 1
        out.write(f"line {line}: working on step {line % 97} of the plan, all fine so far\n")
    out.flush()
    pause = batch / rate - (time.time() - tick)
    if pause > 0:
        time.sleep(pause)
print("agent: done", flush=True)
