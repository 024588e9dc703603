"""Scripted agent: writes one line of about BYTES bytes (mixed ASCII and multi-byte UTF-8, optionally
with a word inserted every so often) without a newline, then "after" on its own line.

usage: long_line.py BYTES [INSERT]
"""

import sys

size = int(sys.argv[1])
insert = sys.argv[2] if len(sys.argv) > 2 else ""
unit = ("abc€defgh" + insert).encode()
data = unit * max(1, size // len(unit))  # whole units: no character cut in half
sys.stdout.buffer.write(data)
sys.stdout.buffer.write(b"\nafter\n")
sys.stdout.flush()
