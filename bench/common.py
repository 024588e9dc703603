"""Shared pieces of the benchmarks: machine facts, repos, a real engine, process figures, results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superset_bot.config import Settings, load_settings
from superset_bot.engine.core import Engine
from superset_bot.plugins.hooks import Hooks, builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.store import Store

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
AGENTS = BENCH_DIR / "agents"
TESTS_AGENTS = ROOT / "tests" / "agents"
RESULTS = BENCH_DIR / "RESULTS.md"
START_MARK = "<!-- bench:latest:start -->"
END_MARK = "<!-- bench:latest:end -->"


# ------------------------------------------------------------------ figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(pct / 100 * len(ordered) + 0.4999))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.0f} ms"


def secs(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds:.2f} s"


def rss_mb() -> float:
    """Resident set size of this process now (VmRSS), in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    """User + system CPU time of this process (not of its agents)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuWindow:
    """CPU use of this process between start and `percent()`, as % of one core."""

    def __init__(self) -> None:
        self.cpu = cpu_seconds()
        self.wall = time.monotonic()

    def percent(self) -> float:
        wall = time.monotonic() - self.wall
        return 100.0 * (cpu_seconds() - self.cpu) / wall if wall > 0 else float("nan")


# ------------------------------------------------------------------ results


@dataclass
class Table:
    """One benchmark's table for RESULTS.md, plus its checks against the issue's targets."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, str, bool | None]] = field(default_factory=list)  # (target, measured, met)
    name: str = ""  # the benchmark that made it (`python -m bench NAME`): RESULTS.md keeps one table per name

    def markdown(self) -> str:
        out = [f"<!-- bench:{self.name} -->"] if self.name else []
        out += [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
               "|" + "|".join(" --- " for _ in self.headers) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in self.rows]
        out += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(out).rstrip() + "\n"

    def text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]
        lines = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in self.rows]
        lines += [f"  * {note}" for note in self.notes]
        return "\n".join(lines)


def _cmd(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
    except OSError:
        return "?"


def machine() -> str:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = _cmd("git", "rev-parse", "--short", "HEAD") or "?"
    dirty = " (uncommitted changes)" if _cmd("git", "status", "--porcelain", "--untracked-files=no") else ""
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; nproc {os.cpu_count()}, memory {mem_kb / 1024 / 1024:.1f} GiB, "
            f"Python {platform.python_version()}, {_cmd('git', '--version')}, {platform.system()} "
            f"{platform.release()}; project commit {commit}{dirty}")


def summary_table(tables: Iterable[Table]) -> Table:
    summary = Table("Targets", ["benchmark", "target", "measured", "verdict"], name="targets")
    for table in tables:
        for target, measured, met in table.targets:
            verdict = "n/a" if met is None else ("met" if met else "MISSED")
            summary.rows.append([table.name, target, measured, verdict])
    return summary


def default_tmp() -> str:
    """tmpfs when it has room: this project's CI disk creates files ~20x slower than tmpfs, which would
    make a 100k-file checkout take minutes and hide everything else in the spawn figures."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * 1024**3:
            return str(shm)
    except OSError:
        pass
    return tempfile.gettempdir()


def filesystem(path: str) -> str:
    return _cmd("stat", "-f", "-c", "%T", path) or "?"


def write_results(tables: Sequence[Table], argv: Sequence[str], where: str = "?") -> str:
    """Put this run's tables into the latest-run section of RESULTS.md, each in place of the table the
    same benchmark left there (and its rows of the targets table). The other benchmarks' tables stay as
    their own runs left them, each with a last note saying when, where and how; anything outside the
    section (before/after notes written by hand) is kept."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    if START_MARK in old and END_MARK in old:
        head, rest = old.split(START_MARK, 1)
        previous, tail = rest.split(END_MARK, 1)
    else:
        head = old or ("# Benchmark results\n\nWritten by `make bench` (`python -m bench`); the section between the "
                       "markers holds the latest table of each benchmark (a run replaces the tables of the benchmarks "
                       "it ran), anything outside it (before/after notes) is kept.\n\n")
        previous, tail = "", ""
    blocks = _blocks(previous)
    ran = {table.name for table in tables}
    kept = [row for row in _table_rows(blocks.pop("targets", "")) if len(row) == 4 and row[0] not in ran]
    run = f"run {machine()}; temp files on {where}; `{' '.join(['python -m bench', *argv])}`"
    for table in tables:
        table.notes.append(run)
        blocks[table.name] = table.markdown()
    order = list(blocks)
    summary = summary_table(tables)
    summary.rows = sorted(kept + summary.rows, key=lambda row: order.index(row[0]) if row[0] in order else len(order))
    body = [START_MARK, "## Latest run", "",
            "Each table is the latest run of its benchmark; its last note says when, where and how it ran "
            "(`python -m bench NAME` replaces only NAME's table and its targets).", "",
            summary.markdown(), *blocks.values(), END_MARK]
    section = "\n".join(body) + "\n"
    tail = tail.lstrip("\n")
    RESULTS.write_text(head + section + ("\n" + tail if tail else ""))
    return section


def _blocks(section: str) -> dict[str, str]:
    """The tables of a latest-run section by benchmark name, in their order (text before the first is dropped)."""
    parts = re.split(r"^<!-- bench:([\w-]+) -->\n", section, flags=re.MULTILINE)
    return {name: "<!-- bench:" + name + " -->\n" + text.rstrip("\n") + "\n"
            for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def _table_rows(block: str) -> list[list[str]]:
    """The body rows of the markdown table in `block`, as cells."""
    lines = [line.strip() for line in block.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


# ------------------------------------------------------------------ bubblewrap


BWRAP_CACHED = Path.home() / ".cache" / "superset-bot" / "bwrap" / "usr" / "bin" / "bwrap"


def find_bwrap() -> tuple[str | None, str]:
    """(the bwrap for sandboxed presets, or None and why not): $SUPERSET_BWRAP, else where
    tests/sandbox/install_bwrap.py unpacks it, else bwrap on PATH; it must run a sandbox here."""
    found = os.environ.get("SUPERSET_BWRAP") or (str(BWRAP_CACHED) if BWRAP_CACHED.is_file() else shutil.which("bwrap"))
    if not found:
        return None, "no bwrap (run `make sandbox-tools`, or set SUPERSET_BWRAP)"
    try:
        probe = subprocess.run([found, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{found} cannot run: {exc}"
    if probe.returncode != 0:
        return None, f"{found} does not work here: {probe.stderr.strip()[-200:]}"
    return found, ""


# ------------------------------------------------------------------ git and repos


def git_sync(cwd: Path, *args: str, input_bytes: bytes | None = None) -> str:
    """Synchronous git for the bench's own set-up (never while the engine is being measured)."""
    out = subprocess.run(["git", *args], cwd=cwd, input=input_bytes, capture_output=True, check=True)
    return out.stdout.decode().strip()


def isolate_git(tmp: Path) -> None:
    """The bench never reads the machine's git config, and its commits have an author."""
    cfg = tmp / "gitconfig"
    cfg.write_text("[user]\n\tname = Bench User\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
                   "[advice]\n\tdetachedHead = false\n[gc]\n\tauto = 0\n")
    os.environ["GIT_CONFIG_GLOBAL"] = str(cfg)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"


def small_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git_sync(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# bench\n")
    git_sync(path, "add", "-A")
    git_sync(path, "commit", "-q", "-m", "initial commit")
    return path


def synthetic_repo(path: Path, files: int) -> float:
    """A repo of `files` small files in one commit on main, via git fast-import; returns seconds taken."""
    start = time.monotonic()
    path.mkdir(parents=True)
    git_sync(path, "init", "-q", "-b", "main")
    chunks: list[bytes] = [b"commit refs/heads/main\nauthor Bench <b@example.com> 1700000000 +0000\n"
                           b"committer Bench <b@example.com> 1700000000 +0000\ndata 15\nsynthetic repo\n"]
    for i in range(files):
        content = f"file {i}\nsome content so that blobs differ: {i * 7919}\n".encode()
        chunks.append(b"M 100644 inline src/d%03d/s%02d/f%06d.txt\ndata %d\n%s\n"
                      % (i // 1000, (i // 100) % 10, i, len(content), content))
    chunks.append(b"\n")
    git_sync(path, "fast-import", "--quiet", input_bytes=b"".join(chunks))
    git_sync(path, "reset", "-q", "--hard", "main")  # the main checkout a real repo would have
    return time.monotonic() - start


# ------------------------------------------------------------------ a real engine


def agent_preset(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"description": "bench agent", "agent": {"command": argv}, "env": dict(env or {})}


def chatty_preset(**env: str) -> dict[str, Any]:
    return agent_preset([sys.executable, str(AGENTS / "chatty.py"), "{prompt}"], env)


def engine_agent_preset(mode: str, **env: str) -> dict[str, Any]:
    return agent_preset([sys.executable, str(TESTS_AGENTS / "engine_agent.py"), "{prompt}"],
                        {"AGENT_MODE": mode, **env})


def bot_env(tmp: Path, repo: Path, presets: dict[str, dict[str, Any]], max_concurrent: int,
            extra: dict[str, str] | None = None) -> dict[str, str]:
    presets_dir = tmp / "presets"
    presets_dir.mkdir(parents=True, exist_ok=True)
    for name, body in presets.items():
        (presets_dir / f"{name}.json").write_text(json.dumps(body))
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
        "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"], "GIT_CONFIG_NOSYSTEM": "1",
        "SUPERSET_REPOS": f"demo={repo}", "SUPERSET_DATA_DIR": str(tmp / "data"),
        "SUPERSET_PRESETS_DIR": str(presets_dir), "SUPERSET_DEFAULT_PRESET": next(iter(presets)),
        "SUPERSET_MAX_CONCURRENT": str(max_concurrent), "SUPERSET_MIN_FREE_DISK": "1M",
        "SUPERSET_CANCEL_GRACE": "1s",
        **(extra or {}),
    }


@dataclass
class Rig:
    engine: Engine
    store: Store
    settings: Settings

    async def close(self) -> None:
        """Stop every agent this rig started, then the engine and the store."""
        await cancel_runs(self.engine)
        await self.engine.stop()
        await self.store.close()


async def cancel_runs(engine: Engine) -> None:
    runs = list(engine.running_agents().values())
    await asyncio.gather(*(run.cancel(0.5) for run in runs), return_exceptions=True)


async def make_rig(tmp: Path, repo: Path, presets: dict[str, dict[str, Any]], *, max_concurrent: int = 4,
                   hooks: Hooks | None = None, extra_env: dict[str, str] | None = None) -> Rig:
    settings = load_settings(bot_env(tmp, repo, presets, max_concurrent, extra_env), env_file=None)
    store = await Store.open(settings.db_path)
    try:
        engine = Engine(settings, store, load_presets(Path(settings.process_env["SUPERSET_PRESETS_DIR"])),
                        hooks or builtin_hooks())
    except BaseException:
        await store.close()  # its thread would keep the process alive after a failed benchmark
        raise
    try:
        await engine.start()
    except BaseException:
        await Rig(engine, store, settings).close()
        raise
    return Rig(engine, store, settings)


async def settled(engine: Engine, task_id: str, states: Iterable[str], timeout: float = 120) -> None:
    """Wait for a state, then for the task's driver (review posted) to finish."""
    await engine.wait_for(task_id, states, timeout=timeout)
    driver = engine.driver_of(task_id)
    if driver is not None:
        await asyncio.wait_for(asyncio.shield(driver), timeout)
