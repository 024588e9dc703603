"""Scripted agent: a busy loop that never ends on its own."""

print("burning", flush=True)
n = 0
while True:
    n += 1
