"""`python tests/soak crash [--tasks N] [--seed S]` (`make soak-crash`): kill -9 the bot mid-run, restart it.

The bot runs as `superset-bot console` in its own process group (its agents are detached, as in
production); this process feeds it commands on stdin and reads the database. Tasks are spawned with
the soak agent (tests/soak/agent.py) and random fates: merge, leave, discard, cancel or discard
while queued, preparing or running, fail. Part way through, the whole bot (and any git it runs) is
killed with SIGKILL at a random moment, then started again on the same data, and the rest goes on.
Races run among the tasks (one per 25): picked with `merge` on two attempts at once, or each attempt
discarded. At the end every task left for review is discarded and one `prune` runs. The invariants:
every task ends merged or discarded; every race ends picked with exactly its winner merged, or
discarded with none; no `superset/` branch, no worktree and no folder in the worktrees dir is left
(warm pool spares aside); every merged edit is on main.

Exit code 0 when every invariant held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from support.env import bot_env
from support.procs import left_running

from soak.workdir import AGENT, git, isolate_git, make_repo
from superset_bot.git.naming import POOL_PREFIX

ACTIVE = {"queued", "preparing", "running", "merging", "discarding"}
REVIEWABLE = {"finished", "failed", "cancelled", "timed_out"}
RACE_FATES = {"pick": 3, "discard_each": 1}
FATES = {"merge": 35, "leave": 10, "discard": 10, "cancel_early": 12, "discard_early": 8,
         "cancel_running": 10, "discard_running": 5, "fail": 10}
ROOT = Path(__file__).resolve().parent.parent.parent


class Bot:
    """One `superset-bot console` process; its output is drained so it never blocks on a full pipe."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "superset_bot.cli", "console"], stdin=subprocess.PIPE,
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=ROOT, start_new_session=True)
        self.lock = threading.Lock()

    def send(self, line: str) -> None:
        with self.lock, contextlib.suppress(BrokenPipeError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def finish(self, timeout: float) -> int:
        with contextlib.suppress(BrokenPipeError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return -9
        finally:
            self.log.close()


def rows(db: Path, table: str) -> list[dict[str, object]]:
    """Every row of `table` ("tasks" or "races"), oldest first; none before the bot made the database."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY created_at")]
        except sqlite3.OperationalError:
            return []


def tasks(db: Path) -> list[dict[str, object]]:
    return rows(db, "tasks")


def races(db: Path) -> list[dict[str, object]]:
    return rows(db, "races")


def key_of(row: dict[str, object]) -> str:
    return str(row["prompt"]).split()[1]


def run(n: int, seed: int, workdir: Path, concurrency: int) -> tuple[list[str], list[str]]:
    isolate_git(workdir)
    rng = random.Random(seed)
    repo = make_repo(workdir / "repos" / "demo")
    presets = workdir / "presets"
    presets.mkdir()
    (presets / "soak.json").write_text(json.dumps(
        {"description": "soak agent", "agent": {"command": [sys.executable, str(AGENT), "{prompt}"]}}))
    data = workdir / "data"
    db = data / "superset.sqlite3"
    env = bot_env(workdir, repo, presets=presets, SUPERSET_DEFAULT_PRESET="soak",
                  SUPERSET_MAX_CONCURRENT=str(concurrency), SUPERSET_CANCEL_GRACE="1s", PYTHONPATH=str(ROOT))
    fates = {f"t{i:03d}": rng.choices(list(FATES), weights=list(FATES.values()))[0] for i in range(n)}
    race_fates = {f"r{i:03d}": rng.choices(list(RACE_FATES), weights=list(RACE_FATES.values()))[0]
                  for i in range(max(1, n // 25))}
    race_at = {round((j + 0.5) * n / len(race_fates)): key for j, key in enumerate(race_fates)}
    mode = {"fail": "fail", "cancel_running": "slow", "discard_running": "slow", "cancel_early": "slow",
            "discard_early": "slow"}
    kill_after = rng.randrange(n // 3, 2 * n // 3)
    started = time.monotonic()
    bot = Bot(env, workdir / "bot.log")
    acted: dict[str, str] = {}  # task id -> the last command sent for it (resent after the restart)
    killed_at: dict[str, object] = {}
    lines: list[str] = []

    def act(rows: list[dict[str, object]]) -> bool:
        """Send what each task's fate asks for now; True when a command went out."""
        sent = False
        by_race: dict[str, list[dict[str, object]]] = {}
        for row in rows:
            if row.get("race_id"):
                by_race.setdefault(str(row["race_id"]), []).append(row)
        for race_id, attempts in by_race.items():
            fate = race_fates[key_of(attempts[0])]
            if any(str(a["state"]) not in REVIEWABLE | {"merged", "discarded"} for a in attempts):
                continue  # a pick waits for every attempt's review
            attempts.sort(key=lambda a: str(a["race_label"]))
            wants = ([("merge", attempts[0]), ("merge", attempts[1])] if fate == "pick"
                     else [("discard", a) for a in attempts])
            for want, attempt in wants:
                tid = str(attempt["id"])
                if str(attempt["state"]) in REVIEWABLE and acted.get(tid) != want:
                    acted[tid] = want
                    bot.send(f"{want} {tid}")
                    sent = True
        for row in rows:
            tid, state = str(row["id"]), str(row["state"])
            if row.get("race_id"):
                continue
            key = key_of(row)
            fate = fates[key]
            want = None
            if fate in ("cancel_early", "discard_early") and state in ("queued", "preparing", "running"):
                want = "cancel" if fate == "cancel_early" else "discard"
            elif fate in ("cancel_running", "discard_running") and state == "running":
                want = "cancel" if fate == "cancel_running" else "discard"
            elif fate == "merge" and state == "finished" and not row["merge_commit"]:
                want = "merge"
            elif fate in ("discard", "fail") and state in REVIEWABLE:
                want = "discard"
            if want and acted.get(tid) != want:
                acted[tid] = want
                bot.send(f"{want} {tid}")
                sent = True
        return sent

    def start_race(key: str) -> None:
        bot.send(f"race 3 [soak {key} edit] soak race {key}")

    for i, key in enumerate(fates):
        bot.send(f"spawn [soak {key} {mode.get(fates[key], 'edit')}] soak task {key}")
        if i in race_at:
            start_race(race_at[i])
        time.sleep(rng.random() * 0.3)
        act(tasks(db))
        if i == kill_after:
            time.sleep(rng.random() * 2)  # a random moment, not a quiet one
            rows = tasks(db)
            killed_at = dict(Counter(str(r["state"]) for r in rows))
            bot.kill9()
            lines.append(f"kill -9 after {i + 1} spawns, {time.monotonic() - started:.0f} s in; states then: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(killed_at.items())))
            bot = Bot(env, workdir / "bot.log")
            acted.clear()  # what the killed bot had not done yet is asked again
            created = {key_of(r) for r in tasks(db)}
            lost = [k for k in list(fates)[: i + 1] if k not in created]  # still in the dead bot's stdin
            for k in lost:
                bot.send(f"spawn [soak {k} {mode.get(fates[k], 'edit')}] soak task {k}")
            raced = {key_of(r) for r in races(db)}
            for k in [race_at[j] for j in sorted(race_at) if j <= i and race_at[j] not in raced]:
                start_race(k)
            lines.append(f"spawns the killed bot never read, sent again: {len(lost)}")
    expected = n + 3 * len(race_fates)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        rows = tasks(db)
        # done only when nothing was just asked: a merge sent now shows as merging on the next read
        settled = not any(r["state"] in ACTIVE for r in rows) and all(
            str(r["state"]) in ("picked", "discarded") for r in races(db))
        if not act(rows) and len(rows) == expected and settled:
            break
        time.sleep(0.5)
    violations: list[str] = []
    rows = tasks(db)
    if len(rows) != expected:
        violations.append(f"{n} spawns and {len(race_fates)} races of 3 but {len(rows)} tasks")
    for row in rows:
        if row["state"] in ACTIVE:
            violations.append(f"task {row['id']} still {row['state']} after 15 minutes")
    for row in rows:  # close everything left for review; nothing may linger afterwards
        if row["state"] in REVIEWABLE:
            bot.send(f"discard {row['id']}")
    bot.send("prune")
    code = bot.finish(600)
    if code != 0:
        violations.append(f"the console exited with {code}")
    rows = tasks(db)
    for row in rows:
        fate = race_fates.get(key_of(row)) or fates.get(key_of(row))
        if row["state"] not in ("merged", "discarded"):
            violations.append(f"task {row['id']} ({fate}) ended {row['state']}: {row['reason']}")
        if row["state"] == "merged":
            key = str(row["prompt"]).split()[1]
            if git(repo, "show", f"main:soak/{key}.txt", check=False) == "":
                violations.append(f"task {row['id']} merged, but soak/{key}.txt is not on main")
    for race in races(db):
        attempts = [r for r in rows if r.get("race_id") == race["id"]]
        merged = [str(r["id"]) for r in attempts if r["state"] == "merged"]
        where = f"race {race['id']} ({race_fates.get(key_of(race))}, {race['state']})"
        if race["state"] == "picked" and merged != [race["winner"]]:
            violations.append(f"{where}: merged {merged}, its winner {race['winner']}")
        elif race["state"] == "discarded" and merged:
            violations.append(f"{where}: discarded, yet {merged} merged")
        elif race["state"] not in ("picked", "discarded"):
            violations.append(f"{where}: not closed")
    branches = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/superset/").split()
    violations += [f"branch left: {b}" for b in branches]
    listed = [line.removeprefix("worktree ") for line in git(repo, "worktree", "list", "--porcelain").splitlines()
              if line.startswith("worktree ")]
    violations += [f"worktree left: {p}" for p in listed[1:] if not Path(p).name.startswith(POOL_PREFIX)]
    root = data / "worktrees" / "demo"
    if root.is_dir():
        violations += [f"folder left: {p}" for p in sorted(root.iterdir()) if not p.name.startswith(POOL_PREFIX)]
    left = left_running(workdir)  # no agent (or git) may outlive its task; one being stopped gets 10 s to go
    if left:
        violations.append("processes still running in the soak's folders: " + "; ".join(left))
    final = dict(Counter(str(r["state"]) for r in rows))
    lines += [f"tasks: {n}; fates: " + ", ".join(f"{k} {v}" for k, v in sorted(
                  dict(Counter(fates.values())).items())),
              f"races: {len(race_fates)} of 3 attempts; fates: " + ", ".join(
                  f"{k} {v}" for k, v in sorted(dict(Counter(race_fates.values())).items()))
              + "; ended: " + ", ".join(f"{k} {v}" for k, v in sorted(
                  dict(Counter(str(r["state"]) for r in races(db))).items())),
              "final states: " + ", ".join(f"{k} {v}" for k, v in sorted(final.items())),
              f"time: {time.monotonic() - started:.0f} s"]
    return lines, violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/soak crash", description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--tmp")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    print(f"soak.crash: seed {seed}; tasks {args.tasks}", flush=True)
    with tempfile.TemporaryDirectory(prefix="superset-crash-", dir=args.tmp) as tmp:
        lines, violations = run(args.tasks, seed, Path(tmp), args.concurrency)
        for line in lines:
            print(line, flush=True)
        print(f"invariant violations: {len(violations)}", flush=True)
        for v in violations[:50]:
            print(f"  - {v}", flush=True)
        keep = os.environ.get("SOAK_KEEP_LOG")  # a file to copy the bot's log to when something failed
        if violations and keep:
            shutil.copy(Path(tmp) / "bot.log", keep)
            print(f"the bot's log: {keep}")
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
