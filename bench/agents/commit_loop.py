"""Bench agent: commits in a tight loop in its own worktree (write a file, `git add`, `git commit`).

It writes BENCH_OUT_DIR/<task id>.ready, waits for BENCH_OUT_DIR/go, then loops for BENCH_SECONDS
counted from that file's mtime (so all agents commit in the same window) and writes
BENCH_OUT_DIR/<task id>.json: commits made, commits failed, failures whose stderr names a lock, the
latency of each successful add + commit, and a few failure messages.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

LOCK_WORDS = ("index.lock", ".lock'", "unable to create", "cannot lock ref", "another git process")

task = os.environ.get("SUPERSET_TASK_ID", "task")
out = Path(os.environ["BENCH_OUT_DIR"])
seconds = float(os.environ.get("BENCH_SECONDS", "5"))
# the sandbox may hide the bench's global git config: the identity comes from here
env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
(out / f"{task}.ready").write_text(repr(time.time()))
go = out / "go"
waited = time.monotonic()
while not go.exists():
    if time.monotonic() - waited > 600:
        sys.exit("no go file within 600 s")
    time.sleep(0.02)
end = go.stat().st_mtime + seconds
Path("loop").mkdir(exist_ok=True)
made = failed = locked = 0
latencies: list[float] = []
errors: list[str] = []
started = time.time()
while time.time() < end:
    Path(f"loop/{task}.txt").write_text(f"commit {made + failed} of task {task}\n")
    tick = time.monotonic()
    err = ""
    add = subprocess.run(["git", "add", f"loop/{task}.txt"], capture_output=True, text=True, env=env)
    if add.returncode == 0:
        commit = subprocess.run(["git", "commit", "-q", "-m", f"bench: commit {made} of {task}"],
                                capture_output=True, text=True, env=env)
        err = "" if commit.returncode == 0 else commit.stderr + commit.stdout
    else:
        err = add.stderr
    if err:
        failed += 1
        locked += any(word in err.lower() for word in LOCK_WORDS)
        if len(errors) < 3:
            errors.append(err.strip()[-300:])
    else:
        made += 1
        latencies.append(time.monotonic() - tick)
elapsed = time.time() - started
(out / f"{task}.json").write_text(json.dumps({"made": made, "failed": failed, "locked": locked,
                                              "latencies": latencies, "errors": errors, "elapsed": elapsed}))
print(f"agent: {made} commits, {failed} failed ({locked} on a lock) in {elapsed:.1f} s", flush=True)
