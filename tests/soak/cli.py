"""`python tests/soak [--tasks N] [--seed S] [--outage SECONDS]`: the soak's command line (see soak/__init__.py).

Exit code 0 when every invariant held, 1 otherwise. The seed is printed first: pass it back with
`--seed` to replay the same task fates and the same fault pattern.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from soak.outage import run_outage
from soak.report import Report
from soak.run import run_soak


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python tests/soak", description=__doc__)
    parser.add_argument("--tasks", type=int, default=100, help="tasks to spawn (default 100)")
    parser.add_argument("--races", type=int, help="races beside the tasks, 2 or 3 attempts each (default: tasks/12)")
    parser.add_argument("--seed", type=int, help="replay a run (default: a new random seed, printed)")
    parser.add_argument("--concurrency", type=int, default=6, help="SUPERSET_MAX_CONCURRENT (default 6)")
    parser.add_argument("--fault-rate", type=float, default=0.1,
                        help="fraction of Web API calls answered 429 or 500 (default 0.1)")
    parser.add_argument("--speed", type=float, default=20.0,
                        help="Slack's budgets scaled by this on both sides (default 20)")
    parser.add_argument("--outage", type=float, default=0.0,
                        help="then take Slack down, and separately have it answer 500, for this many seconds "
                             "while tasks run (`make soak` runs 120; default 0: skip)")
    parser.add_argument("--eager", action="store_true",
                        help="click Merge/Discard the moment a task is done, before its review shows in Slack")
    parser.add_argument("--tmp", help="where repos, worktrees and the database go (default: a temp dir)")
    parser.add_argument("--verbose", action="store_true", help="show the bot's log")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, seed: int, tmp: Path) -> list[Report]:
    reports = []
    if args.tasks > 0:
        reports.append(await run_soak(tmp / "soak", tasks=args.tasks, seed=seed, concurrency=args.concurrency,
                                      fault_rate=args.fault_rate, speed=args.speed, eager=args.eager,
                                      races=args.races))
        print(reports[-1].summary(), flush=True)
    if args.outage > 0:
        # both outages at once: independent bots, so `make soak` stays well under 10 minutes
        outages = await asyncio.gather(run_outage(tmp / "down", kind="down", seconds=args.outage, seed=seed),
                                       run_outage(tmp / "500", kind="500", seconds=args.outage, seed=seed))
        for report in outages:
            print(report.summary(), flush=True)
        reports.extend(outages)
    return reports


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    shown = logging.StreamHandler()
    shown.setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    shown.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(shown)
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)  # the soak watches warnings
    print(f"soak: seed {seed} (replay with --seed {seed}); tasks {args.tasks}; outage {args.outage:g} s", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="superset-soak-", dir=args.tmp) as tmp:
        reports = asyncio.run(run(args, seed, Path(tmp)))
    violations = sum(len(r.violations) for r in reports)
    print(f"soak: seed {seed}; {time.monotonic() - started:.0f} s; invariant violations: {violations}"
          f"{'' if violations == 0 else ' (FAILED)'}", flush=True)
    return 0 if violations == 0 else 1
