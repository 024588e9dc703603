"""Scripted agent: writes MIB mebibytes of numbered lines as fast as it can, then a final line.

Each 1 MiB block starts with "block N" and is filled with "N filler ..." lines, so a reader can
check order. usage: flood.py MIB
"""

import sys

mib = int(sys.argv[1])
filler = b"x" * 90
out = sys.stdout.buffer
for n in range(mib):
    head = b"block %d\n" % n
    line = b"%d %s\n" % (n, filler)
    count = (1024 * 1024 - len(head)) // len(line)
    out.write(head + line * count)
out.write(b"FINAL LINE\n")
out.flush()
