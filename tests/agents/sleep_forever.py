"""Scripted agent: says it started, then sleeps until it is killed."""

import os
import time

print(f"started {os.getpid()}", flush=True)
while True:
    time.sleep(1)
