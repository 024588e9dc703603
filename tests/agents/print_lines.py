"""Scripted agent: prints numbered lines, optionally waits for a gate file, exits with a code.

usage: print_lines.py COUNT [--exit CODE] [--gate PATH --gate-after N] [--delay SECONDS]
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("count", type=int)
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--gate")
parser.add_argument("--gate-after", type=int, default=0)
parser.add_argument("--delay", type=float, default=0.0)
args = parser.parse_args()

for i in range(1, args.count + 1):
    if args.gate and i == args.gate_after + 1:
        while not os.path.exists(args.gate):
            time.sleep(0.02)
    print(f"line {i}", flush=True)
    if i % 2 == 0:
        print(f"stderr {i}", file=sys.stderr, flush=True)
    if args.delay:
        time.sleep(args.delay)
sys.exit(args.exit)
