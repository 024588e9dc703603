"""Scripted agent: allocates and touches MB megabytes in 10 MB steps, then sleeps forever."""

import sys
import time

total = int(sys.argv[1])
held = []
for _ in range(total // 10):
    held.append(b"\x01" * (10 * 1024 * 1024))  # written, so it counts in RSS
    time.sleep(0.01)
print(f"holding {total} MB", flush=True)
while True:
    time.sleep(1)
