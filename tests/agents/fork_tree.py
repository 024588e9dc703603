"""Scripted agent: a tree of processes that all ignore SIGTERM; one branch escapes into its own session.

Every process appends its pid to $PIDS_FILE, so a test can check that none outlives a cancel.
Shape: leader -> child (same group) -> grandchild (setsid, like a daemonising tool) -> great-grandchild.
"""

import os
import signal
import time


def record() -> None:
    with open(os.environ["PIDS_FILE"], "a") as fh:
        fh.write(f"{os.getpid()}\n")


def forever() -> None:
    while True:
        time.sleep(1)


signal.signal(signal.SIGTERM, signal.SIG_IGN)
record()
if os.fork() == 0:
    record()
    if os.fork() == 0:
        os.setsid()  # leaves the agent's process group: killpg alone does not reach it
        record()
        if os.fork() == 0:
            record()
        forever()
    forever()
print("agent: process tree started", flush=True)
forever()
