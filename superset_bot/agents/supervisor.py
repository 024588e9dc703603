"""Supervisor for one agent run, detached from the bot so the run outlives a bot restart.

Run as a standalone script (stdlib only, never imported by the bot):

    python -I supervisor.py --run-dir DIR   < spec.json

The spec (argv, cwd, env, limits, grace) comes on stdin so secrets in the agent's environment
never appear in a command line or on disk. The first process forks a supervisor and exits as
soon as the agent has started (or failed to), printing "ok <supervisor pid>" or
"error <message>"; the supervisor is reparented to init and keeps going without the bot.

The supervisor starts the agent in its own process group with stdout+stderr merged into a
pipe, stores the output in a capped segmented log (head kept, oldest tail segments dropped),
enforces the limits itself, and finally writes `exit.json` atomically, then exits.

Run directory layout (the reader lives in superset_bot/agents/runner.py):
    pid          supervisor pid
    agent.json   agent pid/pgid, the run token, argv, cwd, limits, grace
    log/NNN.log  output segments named by the 20-digit byte offset where they start;
                 segment 0 is the head and is never deleted, later segments are contiguous
                 and the oldest are deleted to keep the total within the output cap
    cancel.json  optional {"grace": seconds} left by the bot before it sends SIGTERM
    exit.json    {"code", "signal", "reason", "detail", "ended_at", "log_error", ...}
    .exit-reserve  64 KiB held while the agent runs, given up so exit.json fits on a full disk

Limits and why they are enforced this way:
- timeout: wall clock measured by the supervisor.
- memory: the summed RSS of the agent's process group, polled from /proc. No RLIMIT_AS:
  agents built on Node or the JVM reserve far more address space than they ever touch,
  so an address-space limit would break them long before they use real memory.
- cpu: RLIMIT_CPU in the agent (SIGXCPU at the limit, SIGKILL a few seconds later) plus the
  summed CPU time of the whole group from /proc, because RLIMIT_CPU counts per process.
- output: capped, never fatal: the agent keeps running and the middle of its output is
  dropped, which readers see as one "[superset-bot: ... of output dropped]" line.
When the agent leader exits, anything it left running in its process group is terminated too,
and so is any descendant that left the group (setsid, a daemonising tool): the supervisor is a
child subreaper, so such processes stay its descendants and it signals them with the group.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import resource
import secrets
import select
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT_CAP = 50 * 1024 * 1024
MIN_OUTPUT_CAP = 4096
DEFAULT_GRACE = 5.0
RUN_TOKEN_VAR = "SUPERSET_BOT_RUN"
READ_SIZE = 1024 * 1024
POLL_INTERVAL = 0.25  # seconds between /proc scans for memory and CPU
OPTIONAL_CGROUP_FILES = ("memory.swap.max",)  # absent without swap accounting: the rest still holds
LOOP_TICK = 0.1  # longest wait for output before limits and signals are looked at again
FORCE_FINISH = 10.0  # seconds after SIGKILL after which we stop waiting for stragglers
EXIT_RESERVE = 64 * 1024  # bytes held back in the run dir so exit.json can be written on a full disk


def format_size(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a half-written file on a full disk would only take more room
        raise


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data))


class SegmentLog:
    """Append-only capped log: a head segment plus rotating tail segments, named by offset.

    Byte offsets of the agent's raw output are the positions readers store, so they stay
    valid whatever is dropped. Segments are cut at a newline when the chunk at hand has one.
    """

    def __init__(self, directory: Path, cap: int) -> None:
        cap = max(cap, MIN_OUTPUT_CAP)
        self.directory = directory
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.segment_cap = max(self.tail_cap // 4, 1)
        self.total = 0
        self.dropped = 0
        self.tail: deque[list[int]] = deque()  # [start, size] of live tail segments, oldest first
        self.failed: str | None = None
        directory.mkdir(mode=0o700, exist_ok=True)
        self.fd = self._open(0)
        self.size = 0
        self.limit = self.head_cap

    def _open(self, start: int) -> int:
        path = self.directory / f"{start:020d}.log"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.tail:
            self.tail[-1][1] = self.size
        self.fd = self._open(self.total)
        self.tail.append([self.total, 0])
        self.size = 0
        self.limit = self.segment_cap
        while (
            len(self.tail) > 1 and sum(s for _, s in list(self.tail)[:-1]) + self.segment_cap > self.tail_cap
        ):
            start, size = self.tail.popleft()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / f"{start:020d}.log")
            self.dropped += size

    def _write_all(self, view: memoryview) -> None:
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def write(self, data: bytes) -> None:
        if self.failed is not None:
            self.total += len(data)  # keep counting so positions still mean raw offsets
            return
        try:
            self._write(data)
        except OSError as exc:  # disk full and friends: keep draining the agent, stop storing
            self.failed = str(exc)
            with contextlib.suppress(OSError):  # stderr (wrapper.err) is likely on the same full disk
                print(f"supervisor: log write failed, output discarded from here: {exc}", file=sys.stderr,
                      flush=True)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        off = 0
        while off < len(data):
            room = self.limit - self.size
            remaining = len(data) - off
            if remaining <= room:
                self._write_all(view[off:])
                self.size += remaining
                self.total += remaining
                return
            if room > 0:
                nl = data.rfind(b"\n", off, off + room)
                cut = nl + 1 if nl >= off else off + room
                self._write_all(view[off:cut])
                self.size += cut - off
                self.total += cut - off
                off = cut
            self._rotate()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, fields of /proc/PID/stat after the command name) for every process still there."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        yield int(name), raw[raw.rfind(b")") + 2 :].split()


def scan_group(pgid: int, live_only: bool = False) -> tuple[int, float, int]:
    """(RSS bytes, CPU seconds incl. reaped children, member count) of a process group."""
    page = os.sysconf("SC_PAGE_SIZE")
    ticks = os.sysconf("SC_CLK_TCK")
    rss = 0
    cpu_ticks = 0
    members = 0
    for _pid, fields in _proc_stats():
        if len(fields) < 22 or int(fields[2]) != pgid or (live_only and fields[0] == b"Z"):
            continue
        members += 1
        cpu_ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
        rss += int(fields[21]) * page
    return rss, cpu_ticks / ticks, members


def escaped_descendants(root: int, pgid: int) -> list[int]:
    """Live descendants of `root` outside process group `pgid` (they called setsid or setpgid)."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[bytes, int]] = {}
    for pid, fields in _proc_stats():
        if len(fields) < 3:
            continue
        children.setdefault(int(fields[1]), []).append(pid)
        info[pid] = (fields[0], int(fields[2]))
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        state, group = info[pid]
        if group != pgid and state not in (b"Z", b"X"):
            found.append(pid)
    return found


class Supervisor:
    def __init__(self, run_dir: Path, spec: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.argv: list[str] = [str(a) for a in spec["argv"]]
        self.cwd = str(spec["cwd"])
        self.env: dict[str, str] = {str(k): str(v) for k, v in spec.get("env", {}).items()}
        self.timeout: float | None = spec.get("timeout")
        self.memory: int | None = spec.get("memory")
        self.cpu: float | None = spec.get("cpu")
        self.output: int = int(spec.get("output") or DEFAULT_OUTPUT_CAP)
        self.grace = float(spec.get("grace", DEFAULT_GRACE))
        self.token = secrets.token_hex(16)
        self.cancel_requested = False
        self.reason: str | None = None
        self.detail = ""
        self.term_at: float | None = None
        self.kill_due: float | None = None
        self.kill_at: float | None = None
        self.status: int | None = None  # raw wait status of the agent leader
        self.leader_cpu = 0.0
        self.peak_rss = 0
        self.max_cpu = 0.0
        self.ended_mono: float | None = None
        self.pgid = 0  # the agent's process group once started
        # a cgroup v2 of its own, when the bot has a delegated subtree: {"path": ..., "memory.max": ..., ...};
        # the kernel then enforces the limits, and the polling above stays as a second line
        self.cgroup: dict[str, str] | None = spec.get("cgroup") or None
        self.cgroup_dir: Path | None = None
        self.cgroup_error: str | None = None

    # -- limits -------------------------------------------------------------------------

    def _make_cgroup(self) -> None:
        """The agent's own cgroup with its limits written; on any failure the limits stay soft (polled)."""
        if not self.cgroup:
            return
        path = Path(self.cgroup["path"])
        try:
            path.mkdir(exist_ok=True)
            for name, value in self.cgroup.items():
                if name == "path":
                    continue
                try:
                    (path / name).write_text(f"{value}\n")
                except OSError:
                    if name not in OPTIONAL_CGROUP_FILES:
                        raise
        except OSError as exc:
            self.cgroup_error = f"{path}: {exc.strerror or exc}"
            with contextlib.suppress(OSError):
                path.rmdir()
            return
        self.cgroup_dir = path

    def _cgroup_events(self, name: str, key: str) -> int:
        """A counter of the cgroup's `name` events file (memory.events oom_kill, pids.events max)."""
        if self.cgroup_dir is None:
            return 0
        try:
            text = (self.cgroup_dir / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            field, _, value = line.partition(" ")
            if field == key and value.strip().isdigit():
                return int(value)
        return 0

    def _check_cgroup(self, now: float) -> None:
        """The kernel held the agent to a limit: stop the rest of it and say which."""
        if self.cgroup is None or self.reason is not None:
            return
        if self._cgroup_events("memory.events", "oom_kill"):
            limit = self.cgroup.get("memory.max", "?")
            shown = format_size(int(limit)) if limit.isdigit() else limit
            self._stop(now, "memory", f"memory limit {shown} reached: the kernel stopped it (cgroup memory.max)")
        elif self._cgroup_events("pids.events", "max"):
            self._stop(now, "pids", f"process limit {self.cgroup.get('pids.max', '?')} reached: a fork past it "
                                    "was refused (cgroup pids.max)")

    def _remove_cgroup(self) -> None:
        if self.cgroup_dir is not None:
            with contextlib.suppress(OSError):
                self.cgroup_dir.rmdir()

    def _preexec(self) -> None:
        if self.cgroup_dir is not None:  # the agent and all it starts live in its cgroup
            try:  # a raw write: this runs between fork and exec
                fd = os.open(str(self.cgroup_dir / "cgroup.procs"), os.O_WRONLY)
                try:
                    os.write(fd, b"0\n")
                finally:
                    os.close(fd)
            except OSError:
                pass  # not moved: its limits stay the polled ones
        if self.cpu is not None:
            soft = max(1, math.ceil(self.cpu))
            hard = soft + 5
            _, cur_hard = resource.getrlimit(resource.RLIMIT_CPU)
            if cur_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, cur_hard), min(hard, cur_hard)
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    def _killpg(self, sig: int) -> bool:
        if self.pgid <= 0:  # killpg(0) would hit our own group
            return False
        try:
            os.killpg(self.pgid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _escaped(self) -> list[int]:
        if self.pgid <= 0:
            return []
        try:
            return escaped_descendants(os.getpid(), self.pgid)
        except OSError:
            return []

    def _signal_escaped(self, sig: int) -> bool:
        """Send `sig` to descendants that left the agent's group; whether there were any."""
        escaped = self._escaped()
        for pid in escaped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return bool(escaped)

    def _stop(self, now: float, reason: str | None, detail: str) -> None:
        """Begin ending the group: SIGTERM now, SIGKILL after the grace period."""
        if reason is not None and self.reason is None:
            self.reason, self.detail = reason, detail
        if self.term_at is None:
            self.term_at = now
            self.kill_due = now + self.grace
            if self._killpg(signal.SIGTERM):
                self._killpg(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            if self._signal_escaped(signal.SIGTERM):
                self._signal_escaped(signal.SIGCONT)

    def _on_cancel(self, now: float) -> None:
        try:
            extra = json.loads((self.run_dir / "cancel.json").read_text())
            if isinstance(extra.get("grace"), int | float) and extra["grace"] >= 0:
                self.grace = float(extra["grace"])
                if self.kill_due is not None and self.term_at is not None:
                    self.kill_due = min(self.kill_due, self.term_at + self.grace)
        except (OSError, ValueError, AttributeError):
            pass
        if self.status is None:
            self._stop(now, "cancelled", "cancelled on request")
        else:
            self._stop(now, None, "")

    def _check_limits(self, now: float, started: float) -> None:
        if self.reason is not None or self.status is not None:
            return
        if self.timeout is not None and now - started >= self.timeout:
            self._stop(now, "timeout", f"time limit {format_seconds(self.timeout)} reached")
            return
        self._check_cgroup(now)
        if self.reason is not None or (self.memory is None and self.cpu is None):
            return
        rss, cpu, _ = scan_group(self.pgid)
        self.peak_rss = max(self.peak_rss, rss)
        self.max_cpu = max(self.max_cpu, cpu)
        if self.memory is not None and rss > self.memory:
            detail = f"memory limit {format_size(self.memory)} exceeded (RSS {format_size(rss)})"
            self._stop(now, "memory", detail)
        elif self.cpu is not None and self.max_cpu >= self.cpu:
            detail = f"CPU limit {self.cpu:g}s exceeded (used {self.max_cpu:.1f}s)"
            self._stop(now, "cpu", detail)

    # -- main loop ----------------------------------------------------------------------

    def _group_alive(self) -> bool:
        """Whether a live (non-zombie) process is left in the agent's group."""
        if not self._killpg(0):
            return False
        return scan_group(self.pgid, live_only=True)[2] > 0

    def _reap(self, proc: subprocess.Popen[bytes], now: float) -> None:
        """Reap the agent and, as subreaper, any orphaned descendants, so none linger as zombies."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == proc.pid:
                self._leader_ended(proc, status, usage, now)

    def _leader_ended(
        self, proc: subprocess.Popen[bytes], status: int, usage: resource.struct_rusage, now: float
    ) -> None:
        self.status = status
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from reaping twice
        self.leader_cpu = usage.ru_utime + usage.ru_stime
        self.ended_mono = now
        if self.reason is None and os.WIFSIGNALED(status) and self.cpu is not None:
            sig = os.WTERMSIG(status)
            used = max(self.leader_cpu, self.max_cpu)
            if sig == signal.SIGXCPU:
                used = max(used, self.cpu)  # the kernel's count, finer than rusage, said so
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and self.term_at is None and used >= self.cpu):
                self.reason = "cpu"
                self.detail = f"CPU limit {self.cpu:g}s exceeded (used {used:.1f}s)"
        # whatever the leader left behind in its group, or outside it, goes too
        if self._group_alive() or self._escaped():
            self._stop(now, None, "")

    def run(self, report: Callable[[str], None]) -> None:
        log = SegmentLog(self.run_dir / "log", self.output)
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, READ_SIZE)
        env = dict(self.env)
        env[RUN_TOKEN_VAR] = self.token
        self._make_cgroup()
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv from the bot's preset, never a shell
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                preexec_fn=self._preexec if self.cpu is not None or self.cgroup_dir else None,  # noqa: PLW1509
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            log.close()
            start_code = 127 if isinstance(exc, FileNotFoundError) else 126
            detail = f"could not start {self.argv[0]!r}: {exc.strerror or exc}"
            self._write_exit(start_code, None, "exited", detail, log)
            report(f"error {detail}")
            return
        os.close(write_fd)
        started = time.monotonic()
        self.pgid = proc.pid
        write_json_atomic(
            self.run_dir / "agent.json",
            {
                "pid": proc.pid,
                "pgid": proc.pid,
                "token": self.token,
                "supervisor_pid": os.getpid(),
                "started_at": time.time(),
                "argv": self.argv,
                "cwd": self.cwd,
                "limits": {
                    "timeout": self.timeout,
                    "memory": self.memory,
                    "cpu": self.cpu,
                    "output": self.output,
                },
                "grace": self.grace,
                "cgroup": str(self.cgroup_dir) if self.cgroup_dir else None,
                "cgroup_error": self.cgroup_error,
            },
        )
        report(f"ok {os.getpid()}")

        poller = select.poll()
        poller.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        pipe_open = True
        next_scan = started + POLL_INTERVAL
        while True:
            if pipe_open:
                if poller.poll(int(LOOP_TICK * 1000)):
                    try:
                        data = os.read(read_fd, READ_SIZE)
                    except BlockingIOError:
                        data = None
                    if data:
                        log.write(data)
                    elif data is not None:
                        pipe_open = False
                        poller.unregister(read_fd)
                        os.close(read_fd)
            else:
                time.sleep(0.05)
            now = time.monotonic()
            if self.cancel_requested:
                self.cancel_requested = False
                self._on_cancel(now)
            self._reap(proc, now)
            if now >= next_scan or (self.timeout is not None and now - started >= self.timeout):
                self._check_limits(now, started)
                next_scan = now + POLL_INTERVAL
            if self.kill_due is not None and self.kill_at is None and now >= self.kill_due:
                self.kill_at = now
                escaped = self._signal_escaped(signal.SIGKILL)
                if (self._killpg(signal.SIGKILL) or escaped) and self.reason is not None:
                    self.detail += f"; it was killed after ignoring SIGTERM for {format_seconds(self.grace)}"
            if self.status is None:
                continue
            group_gone = not self._group_alive() and not self._escaped()
            forced = self.kill_at is not None and now - self.kill_at >= FORCE_FINISH
            if not (group_gone or forced):
                continue
            # Output still held open by a process that left the group: give it a moment, then stop.
            assert self.ended_mono is not None
            if pipe_open and now - self.ended_mono < max(2.0, self.grace):
                continue
            break
        # Zombies of the group may still wait for us (we are their subreaper): reap them, so the
        # group is gone for real by the time exit.json says the run is over.
        settle = time.monotonic() + 1.0
        while (self._killpg(0) or self._signal_escaped(signal.SIGKILL)) and time.monotonic() < settle:
            self._reap(proc, time.monotonic())
            time.sleep(0.01)
        if pipe_open:
            os.close(read_fd)
        log.close()
        status = self.status
        assert status is not None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if code != 0:
            self._check_cgroup(time.monotonic())  # a kernel kill the last poll did not see yet
        self._remove_cgroup()
        if self.reason is None:
            reason = "exited"
            detail = f"exited with code {code}" if code is not None else f"killed by {signal_name(sig or 0)}"
        else:
            reason, detail = self.reason, self.detail
        self._write_exit(code, sig, reason, detail, log)

    def _write_exit(
        self, code: int | None, sig: int | None, reason: str, detail: str, log: SegmentLog
    ) -> None:
        write_exit_json(
            self.run_dir,
            {
                "code": code,
                "signal": sig,
                "reason": reason,
                "detail": detail,
                "ended_at": time.time(),
                "output_bytes": log.total,
                "dropped_bytes": log.dropped,
                "peak_rss": self.peak_rss,
                "log_error": log.failed,
            },
        )


def reserve_exit_space(run_dir: Path) -> None:
    """Hold a little disk space for exit.json: an agent that fills the disk must not cost the run's outcome."""
    with contextlib.suppress(OSError):
        write_text_atomic(run_dir / ".exit-reserve", "\0" * EXIT_RESERVE)


def write_exit_json(run_dir: Path, data: dict[str, Any]) -> None:
    """Write exit.json; if the disk is full, give up the reserved space and try once more."""
    reserve = run_dir / ".exit-reserve"
    try:
        write_json_atomic(run_dir / "exit.json", data)
    except OSError:
        if not reserve.exists():
            raise
        reserve.unlink()
        write_json_atomic(run_dir / "exit.json", data)
    with contextlib.suppress(OSError):
        reserve.unlink()


def become_subreaper() -> bool:
    """Orphaned descendants of the agent get reparented to us, so we reap them promptly."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_child_subreaper = 36
        return int(libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _load_spec(raw: bytes) -> dict[str, Any]:
    spec = json.loads(raw)
    if not isinstance(spec, dict) or not isinstance(spec.get("argv"), list) or not spec["argv"]:
        raise ValueError("spec must be a JSON object with a non-empty argv list")
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Supervise one superset-bot agent run (spec JSON on stdin).")
    parser.add_argument("--run-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    try:
        spec = _load_spec(sys.stdin.buffer.read())
    except ValueError as exc:
        print(f"error bad spec: {exc}", flush=True)
        return 2

    ready_r, ready_w = os.pipe()
    if os.fork():
        # The launcher: relay the supervisor's first word, then let the bot reap us.
        os.close(ready_w)
        chunks = []
        while chunk := os.read(ready_r, 4096):
            chunks.append(chunk)
        message = (
            b"".join(chunks).decode(errors="replace").strip() or "error the supervisor died while starting"
        )
        print(message, flush=True)
        return 0 if message.startswith("ok ") else 1

    # The supervisor (a grandchild of the bot once the launcher exits).
    os.close(ready_r)
    status = 0
    reported = False

    def report(message: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            os.write(ready_w, message.encode() + b"\n")
            os.close(ready_w)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.close(devnull)

    supervisor = Supervisor(run_dir, spec)

    def on_signal(signum: int, frame: object) -> None:
        supervisor.cancel_requested = True

    try:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.chdir("/")
        become_subreaper()
        write_text_atomic(run_dir / "pid", f"{os.getpid()}\n")
        reserve_exit_space(run_dir)
        supervisor.run(report)
    except BaseException as exc:  # last resort: never leave an agent running unsupervised
        with contextlib.suppress(Exception):  # wrapper.err may be on a full disk
            traceback.print_exc()
        status = 1
        with contextlib.suppress(Exception):
            supervisor._killpg(signal.SIGKILL)
        with contextlib.suppress(Exception):
            write_exit_json(
                run_dir,
                {
                    "code": None,
                    "signal": None,
                    "reason": "lost",
                    "detail": f"the agent's supervisor failed: {exc!r}",
                    "ended_at": time.time(),
                },
            )
        report(f"error the agent's supervisor failed: {exc!r}")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
