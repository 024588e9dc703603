"""Bench agent: commits one file of its own (work/<task id>.txt), so merges never conflict."""

import os
import subprocess
from pathlib import Path

task = os.environ.get("SUPERSET_TASK_ID", "task")
Path("work").mkdir(exist_ok=True)
Path(f"work/{task}.txt").write_text(f"work of task {task}\n")
subprocess.run(["git", "add", f"work/{task}.txt"], check=True, capture_output=True)
subprocess.run(["git", "commit", "-q", "-m", f"bench: work of {task}"], check=True, capture_output=True)
print("agent: done", flush=True)
