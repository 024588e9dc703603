"""`python -m bench [spawn|fanout|soak|merge|scale|endlag|gitlock|race|temporal ...] [--quick|--full] [--files N] [--tasks 20,50]`.

Runs the chosen benchmarks (all by default) in temp dirs, prints each table and a final table of
the targets, and puts them into bench/RESULTS.md (in place of those benchmarks' earlier tables).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import endlag, fanout, gitlock, merge, race, scale, soak, spawn, temporal
from bench.common import RESULTS, Table, default_tmp, filesystem, isolate_git, summary_table, write_results

NAMES = ("spawn", "fanout", "soak", "merge", "scale", "endlag", "gitlock", "race", "temporal")


def levels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"levels must be positive: {text!r}")
    return values


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="*", metavar="NAME",
                        help=f"which to run (default all): {', '.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run with small sizes")
    parser.add_argument("--full", action="store_true", help="the issue's full sizes (60 s soak)")
    parser.add_argument("--files", type=int, help="files in the spawn benchmark's repo (default 100,000)")
    parser.add_argument("--spawns", type=int, help="spawns timed (default 20); temporal: warm spawns "
                        "after the cold one (default 10, --quick 3)")
    parser.add_argument("--soak-seconds", type=float, help="soak duration (default 20, --full 60)")
    parser.add_argument("--agents", type=int, help="agents in the soak and in gitlock (default 20, --quick 5)")
    parser.add_argument("--lines-per-second", type=int, default=2000, help="each soak agent's output rate")
    parser.add_argument("--merges", type=int, help="tasks in the merge storm (default 50)")
    parser.add_argument("--tasks", type=levels, help="endlag: busy tasks per level, comma-separated "
                        "(default 20,50; --quick 5)")
    parser.add_argument("--task-lines-per-second", type=int, default=300, help="endlag: each agent's output rate")
    parser.add_argument("--commit-seconds", type=float, help="gitlock: how long the agents commit, per mode "
                        "(default 15, --quick 4)")
    parser.add_argument("--tmp", help="where temp repos, worktrees and logs go (default: /dev/shm when it has "
                        "4 GiB free, else the system temp dir); the spawn figures depend on this filesystem")
    parser.add_argument("--verbose", action="store_true", help="show the bot's own log lines")
    args = parser.parse_args(argv)
    for name in args.benchmarks:
        if name not in NAMES:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(NAMES)}")
    return args


async def run_one(name: str, tmp: Path, args: argparse.Namespace) -> Table:
    quick = args.quick
    if name == "spawn":
        return await spawn.run(tmp, files=args.files or (5_000 if quick else 100_000),
                               spawns=args.spawns or (5 if quick else 20))
    if name == "fanout":
        return await fanout.run(tmp, ns=(1, 10) if quick else (1, 10, 50))
    if name == "soak":
        seconds = args.soak_seconds or (5.0 if quick else 60.0 if args.full else 20.0)
        return await soak.run(tmp, agents=args.agents or (5 if quick else 20), seconds=seconds,
                              rate=args.lines_per_second)
    if name == "merge":
        return await merge.run(tmp, tasks=args.merges or (10 if quick else 50))
    if name == "scale":
        return await scale.run(tmp, levels=(1, 5) if quick else (1, 10, 50), window=2.0 if quick else 5.0)
    if name == "endlag":
        return await endlag.run(tmp, levels=args.tasks or ((5,) if quick else (20, 50)),
                                rate=args.task_lines_per_second, seconds=(4.0, 8.0) if quick else (15.0, 30.0),
                                settle_timeout=120.0 if quick else 600.0)
    if name == "gitlock":
        return await gitlock.run(tmp, agents=args.agents or (5 if quick else 20),
                                 seconds=args.commit_seconds or (4.0 if quick else 15.0))
    if name == "race":
        return await race.run(tmp, ns=(3,) if quick else (3, 5))
    if name == "temporal":
        return await temporal.run(tmp, warm=args.spawns or (3 if quick else 10))
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tables: list[Table] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="superset-bench-", dir=args.tmp or default_tmp()) as top:
        isolate_git(Path(top))
        for name in args.benchmarks or NAMES:
            started = time.monotonic()
            print(f"\n== {name} ==", flush=True)
            try:
                with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=top) as tmp:
                    table = asyncio.run(run_one(name, Path(tmp), args))
            except Exception as exc:
                traceback.print_exc()
                failed.append(name)
                table = Table(f"{name}: FAILED", ["error"], [[f"{type(exc).__name__}: {exc}"[:300]]])
                table.targets.append((f"{name} ran to the end", "failed", False))
            table.name = name
            table.notes.append(f"took {time.monotonic() - started:.0f} s")
            tables.append(table)
            print(table.text(), flush=True)
    print("\n" + summary_table(tables).text())
    write_results(tables, argv, where=f"{args.tmp or default_tmp()} ({filesystem(args.tmp or default_tmp())})")
    print(f"\nwritten to {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
