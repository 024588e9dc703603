"""Scripted agent: starts a child that sleeps forever (holding the output pipe), then exits 0."""

import os
import time

child = os.fork()
if child == 0:
    while True:
        time.sleep(1)
print(f"left {child}", flush=True)
