"""Re-record the real agent CLIs' output fixtures: `make record-agents` (`python tests/realagents/record.py`).

Each CLI's module (claude.py, codex.py, aider.py beside this one) drives its pinned CLI against the
project's fake model server through its scenarios and writes what the CLI printed, normalised
(temp paths replaced, ids kept), to tests/samples/. The parser unit tests read those files, so a
new CLI version is one re-record and one test run away from known-good or known-broken.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CLIS = ("claude", "codex", "aider")


async def record_all(names: tuple[str, ...], out_dir: Path) -> list[Path]:
    written: list[Path] = []
    for name in names:
        module = importlib.import_module(f"realagents.{name}")
        result = module.record(out_dir)
        written.extend(await result if asyncio.iscoroutine(result) else result)
    return written


def main() -> None:
    # run as a script, tests/realagents is first on sys.path (its modules would shadow top-level names):
    # tests/ goes there instead, so realagents, fakemodels and support import as under pytest
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if str(here.parent) not in sys.path:
        sys.path.insert(0, str(here.parent))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clis", nargs="*", metavar="CLI", help=f"which of {', '.join(CLIS)} (default: all)")
    parser.add_argument("--out", type=Path, default=SAMPLES, help="where the fixtures go (default tests/samples)")
    args = parser.parse_args()
    unknown = [name for name in args.clis if name not in CLIS]
    if unknown:
        parser.error(f"unknown CLI {', '.join(unknown)}: choose from {', '.join(CLIS)}")
    for path in asyncio.run(record_all(tuple(args.clis) or CLIS, args.out)):
        print(path)


if __name__ == "__main__":
    main()
