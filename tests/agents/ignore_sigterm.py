"""Scripted agent: forks a child; parent and child both ignore SIGTERM and sleep forever."""

import os
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    print(f"child {os.getpid()}", flush=True)
    while True:
        time.sleep(1)
print(f"parent {os.getpid()}", flush=True)
while True:
    time.sleep(1)
