"""Running one agent detached from the bot, and reading its output back.

The bot never parents an agent directly: `superset_bot/agents/supervisor.py` (a standalone stdlib script)
supervises it, enforces the limits, keeps a capped log and records the exit in `exit.json`, so
a run survives a bot restart and `AgentRun.attach` picks it up again from its run directory.
Positions handed out by `AgentRun.lines` are byte offsets into the agent's raw output, so a
reader that stores one and comes back later loses and doubles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from superset_bot import procs
from superset_bot.redact import Redactor
from superset_bot.units import format_size

SUPERVISOR = Path(__file__).with_name("supervisor.py")
# supervisors started by an older release, still running across an upgrade, are followed too
_SUPERVISOR_SCRIPTS = (b"supervisor.py", b"agent_wrapper.py")
DEFAULT_OUTPUT_CAP = 50 * 1024 * 1024
RUN_TOKEN_VAR = "SUPERSET_BOT_RUN"
# Over-long lines are handed out in pieces of at most this many bytes. Generous, so that one
# JSON event of a streaming agent (a tool result holding a whole file) stays one line.
MAX_LINE = 1024 * 1024
READ_CHUNK = 64 * 1024  # bytes read per step: bounds the memory of one step's lines
POLL_DELAY = 0.1  # seconds between looks at a quiet log or a running supervisor
START_TIMEOUT = 30.0
EXIT_REASONS = ("exited", "timeout", "memory", "cpu", "pids", "cancelled", "lost")
_SEGMENT_NAME_LEN = 24  # 20 digits + ".log"


class RunnerError(Exception):
    """An agent run could not be started or found; the message says what to fix."""


@dataclass(frozen=True)
class RunLimits:
    timeout: float | None = None  # seconds of wall clock
    memory: int | None = None  # bytes of RSS, summed over the agent's process group
    cpu: float | None = None  # CPU seconds
    output: int | None = None  # log cap in bytes (None -> 50 MiB)

    def __post_init__(self) -> None:
        for name in ("timeout", "memory", "cpu", "output"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int | float) or value <= 0 or not math.isfinite(value)
            ):
                raise RunnerError(f"run limit {name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ExitInfo:
    code: int | None
    signal: int | None
    reason: str  # one of EXIT_REASONS
    detail: str  # a sentence for people, e.g. "memory limit 200.0 MiB exceeded (RSS 231.4 MiB)"
    ended_at: float
    log_error: str | None = None  # why the run log stopped storing output (a full disk), if it did

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.code == 0


LOST_DETAIL = "the agent's supervisor died without recording an exit code"


def _read_exit(run_dir: Path) -> ExitInfo | None:
    try:
        data = json.loads((run_dir / "exit.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return ExitInfo(None, None, "lost", "the run's exit.json is unreadable", time.time())
    return ExitInfo(
        code=data.get("code"),
        signal=data.get("signal"),
        reason=str(data.get("reason", "lost")),
        detail=str(data.get("detail", "")),
        ended_at=float(data.get("ended_at") or 0.0),
        log_error=str(data["log_error"]) if data.get("log_error") else None,
    )


def _write_exit_once(run_dir: Path, info: ExitInfo) -> ExitInfo:
    """Record an exit the bot determined itself, unless the supervisor got there first."""
    tmp = run_dir / f".exit.json.bot.{os.getpid()}.tmp"
    tmp.write_text(
        json.dumps(
            {
                "code": info.code,
                "signal": info.signal,
                "reason": info.reason,
                "detail": info.detail,
                "ended_at": info.ended_at,
            }
        )
    )
    try:
        os.link(tmp, run_dir / "exit.json")  # fails if it exists: never overwrite the real record
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_exit(run_dir) or info


def _check_command(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
    if not argv:
        raise RunnerError("the agent command is empty; set agent.command in the preset")
    if not cwd.is_dir():
        raise RunnerError(f"the agent's working directory {cwd} does not exist")
    command = argv[0]
    if "/" in command:
        path = Path(command) if Path(command).is_absolute() else cwd / command
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RunnerError(f"agent command {command!r} is not an executable file (looked at {path})")
        return
    search_path = env.get("PATH", os.defpath)
    if shutil.which(command, path=search_path) is None:
        raise RunnerError(
            f"agent command {command!r} was not found on the agent's PATH ({search_path}); "
            "install it or fix the command in the preset"
        )


def _prepare_run_dir(run_dir: Path) -> None:
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("pid", "exit.json", "log", "agent.json"):
        if (run_dir / name).exists():
            raise RunnerError(f"{run_dir} already holds a run ({name} exists); use a new run directory")


def _group_is_ours(pgid: int, token: str) -> bool:
    """Whether a member of process group `pgid` carries this run's token (guards pid reuse)."""
    return bool(procs.processes_with_env(f"{RUN_TOKEN_VAR}={token}", procs.group_members(pgid)))


class _LogCursor:
    """Reads a run's segmented log from a raw byte position, one bounded step at a time.

    Runs in a worker thread (`step` does blocking file I/O). Lines come out as
    (position after the line, text); a gap left by dropped segments comes out as one marker line.
    """

    def __init__(
        self,
        log_dir: Path,
        position: int,
        redactor: Redactor | None,
        ended: Callable[[], bool],
        max_line: int,
    ) -> None:
        self.log_dir = log_dir
        self.pos = position  # next raw byte to read
        self.pending = bytearray()  # an unfinished line ...
        self.line_start = position  # ... which starts at this raw position
        self.redactor = redactor if redactor else None
        self.ended = ended
        self.max_line = max(max_line, 16)

    def _segments(self) -> list[int]:
        try:
            names = os.listdir(self.log_dir)
        except FileNotFoundError:
            return []
        return sorted(
            int(n[:20])
            for n in names
            if len(n) == _SEGMENT_NAME_LEN and n.endswith(".log") and n[:20].isdigit()
        )

    def _text(self, raw: bytes | bytearray) -> str:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        return self.redactor.redact(text) if self.redactor else text

    def _cut(self) -> int:
        """Where to break an over-long line: not inside a UTF-8 character nor inside a secret."""
        data, cut = self.pending, self.max_line
        back = cut
        while back > cut - 3 and (data[back] & 0xC0) == 0x80:  # continuation byte: step back
            back -= 1
        if (data[back] & 0xC0) != 0x80:
            cut = back
        if self.redactor:
            cut = self.redactor.safe_cut(bytes(data[: cut + self.redactor.max_bytes]), cut)
        return cut

    def _split(self, out: list[tuple[int, str]], keep: int) -> None:
        while len(self.pending) > keep:
            cut = self._cut()
            self.line_start += cut
            out.append((self.line_start, self._text(self.pending[:cut])))
            del self.pending[:cut]

    def _finish_line(self, out: list[tuple[int, str]], end: int | None) -> None:
        """Hand out the pending line; `end` is the position after its newline, None if it has none."""
        self._split(out, self.max_line)
        if self.pending or end is not None:
            out.append(
                (end if end is not None else self.line_start + len(self.pending), self._text(self.pending))
            )
        self.pending.clear()

    def _feed(self, data: bytes, out: list[tuple[int, str]]) -> None:
        base = self.pos  # raw position of data[0]
        self.pos += len(data)
        begin = 0
        while (nl := data.find(b"\n", begin)) >= 0:
            if not self.pending and nl - begin <= self.max_line:
                out.append((base + nl + 1, self._text(data[begin:nl])))
            else:
                if not self.pending:
                    self.line_start = base + begin
                self.pending += data[begin:nl]
                self._finish_line(out, base + nl + 1)
            begin = nl + 1
        if begin < len(data):
            if not self.pending:
                self.line_start = base + begin
            self.pending += data[begin:]
            self._split(out, self.max_line + (self.redactor.max_bytes if self.redactor else 0))

    def step(self) -> tuple[list[tuple[int, str]], str]:
        """Lines read in this step and "more" (read again now), "idle" (poll later) or "done"."""
        out: list[tuple[int, str]] = []
        ended = self.ended()  # before listing: if it had ended, the listing is final
        segments = self._segments()
        candidates = [s for s in segments if s <= self.pos]
        if not candidates:
            if ended:
                self._finish_line(out, None)
                return out, "done"
            return out, "idle"
        start = candidates[-1]
        following = [s for s in segments if s > self.pos]
        try:
            with open(self.log_dir / f"{start:020d}.log", "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if following and self.pos >= start + size:
                    # Past the end of a finished segment, short of the next one: a dropped stretch.
                    self._finish_line(out, None)
                    dropped = following[0] - self.pos
                    self.pos = following[0]
                    out.append((self.pos, f"[superset-bot: {format_size(dropped)} of output dropped]"))
                    return out, "more"
                f.seek(self.pos - start)
                data = f.read(READ_CHUNK)
        except FileNotFoundError:  # deleted under us: look again, the gap shows up then
            return out, "more"
        if data:
            self._feed(data, out)
            return out, "more"
        if ended and not following:
            self._finish_line(out, None)
            return out, "done"
        return out, "idle"


class AgentRun:
    """A handle on one supervised agent run, found by its run directory."""

    def __init__(self, run_dir: Path, pid: int, redactor: Redactor | None = None) -> None:
        self.run_dir = run_dir
        self.pid = pid
        self.redactor = redactor

    @classmethod
    async def start(
        cls,
        run_dir: Path,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        limits: RunLimits = RunLimits(),
        redactor: Redactor | None = None,
        grace: float = 5.0,
        cgroup: Mapping[str, str] | None = None,
    ) -> AgentRun:
        """Start `argv` in `cwd` under a detached supervisor; returns once the agent is running.
        `cgroup`: the agent's own cgroup v2 ("path", and the limit files to write in it)."""
        run_dir = Path(run_dir).resolve()
        cwd = Path(cwd).resolve()
        argv = [str(a) for a in argv]
        env = {str(k): str(v) for k, v in env.items()}
        if grace < 0 or not math.isfinite(grace):
            raise RunnerError(f"the grace period must be zero or more seconds, got {grace!r}")
        await asyncio.to_thread(_check_command, argv, cwd, env)
        await asyncio.to_thread(_prepare_run_dir, run_dir)
        spec = {
            "argv": argv,
            "cwd": str(cwd),
            "env": env,
            "timeout": limits.timeout,
            "memory": limits.memory,
            "cpu": limits.cpu,
            "output": limits.output or DEFAULT_OUTPUT_CAP,
            "grace": grace,
            "cgroup": dict(cgroup) if cgroup else None,
        }
        err_path = run_dir / "wrapper.err"
        err_file = await asyncio.to_thread(open, err_path, "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # ignore PYTHON* variables and user site-packages: the wrapper is stdlib only
                str(SUPERVISOR),
                "--run-dir",
                str(run_dir),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err_file,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"},
            )
        finally:
            err_file.close()
        try:
            out, _ = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode()), START_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RunnerError(
                f"the agent supervisor did not start within {START_TIMEOUT:g}s; see {err_path}"
            ) from None
        message = out.decode(errors="replace").strip()
        if message.startswith("ok "):
            return cls(run_dir, int(message.split()[1]), redactor)
        if message.startswith("error "):
            raise RunnerError(message[len("error ") :])
        errors = await asyncio.to_thread(err_path.read_text, errors="replace")
        raise RunnerError(f"the agent supervisor failed to start: {errors.strip()[-500:] or 'no message'}")

    @classmethod
    def attach(cls, run_dir: Path, redactor: Redactor | None = None) -> AgentRun:
        """The handle for a run started earlier, e.g. by a previous bot process."""
        run_dir = Path(run_dir).resolve()
        try:
            pid = int((run_dir / "pid").read_text().strip())
        except FileNotFoundError:
            raise RunnerError(f"no agent run in {run_dir} (no pid file)") from None
        except ValueError:
            raise RunnerError(f"the pid file in {run_dir} is unreadable") from None
        return cls(run_dir, pid, redactor)

    def _agent(self) -> dict[str, object]:
        try:
            data = json.loads((self.run_dir / "agent.json").read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def is_alive(self) -> bool:
        """Whether our supervisor still runs (a reused pid belongs to some other command line)."""
        try:
            args = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if not any(a.endswith(_SUPERVISOR_SCRIPTS) for a in args) or b"--run-dir" not in args:
            return False
        try:
            run_dir = args[args.index(b"--run-dir") + 1]
            return os.path.samefile(run_dir, self.run_dir)
        except (IndexError, OSError):
            return False

    def exit_info(self) -> ExitInfo | None:
        """How the run ended, or None while it is still going."""
        info = _read_exit(self.run_dir)
        if info is not None or self.is_alive():
            return info
        return _read_exit(self.run_dir) or ExitInfo(None, None, "lost", LOST_DETAIL, time.time())

    def _ended(self) -> bool:
        return (self.run_dir / "exit.json").exists() or not self.is_alive()

    async def lines(self, start: int = 0, *, max_line: int = MAX_LINE) -> AsyncIterator[tuple[int, str]]:
        """(position after the line, redacted line) from `start`, live until the run is over.

        Lines longer than `max_line` bytes come out in pieces; the stretch the log cap dropped
        comes out as one "[superset-bot: N MiB of output dropped]" line.
        """
        cursor = _LogCursor(self.run_dir / "log", start, self.redactor, self._ended, max_line)
        while True:
            out, state = await asyncio.to_thread(cursor.step)
            for item in out:
                yield item
            if state == "done":
                return
            if state == "idle":
                await asyncio.sleep(POLL_DELAY)

    async def wait(self) -> ExitInfo:
        while True:
            info = await asyncio.to_thread(self.exit_info)
            if info is not None:
                return info
            await asyncio.sleep(POLL_DELAY)

    async def cancel(self, grace: float | None = None) -> ExitInfo:
        """End the run: SIGTERM to the agent's group, SIGKILL after the grace period."""
        info = await asyncio.to_thread(_read_exit, self.run_dir)
        if info is not None:
            return info
        agent = await asyncio.to_thread(self._agent)
        effective = grace if grace is not None else float(agent.get("grace", 5.0))  # type: ignore[arg-type]
        if await asyncio.to_thread(self.is_alive):
            if grace is not None:
                await asyncio.to_thread(
                    (self.run_dir / "cancel.json").write_text, json.dumps({"grace": grace})
                )
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.wait(), effective + 15.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        return await self._kill_group_directly(agent, effective)

    async def _kill_group_directly(self, agent: Mapping[str, object], grace: float) -> ExitInfo:
        """The supervisor is gone or stuck: end the agent's group ourselves, if it is still ours."""
        pgid, token = agent.get("pgid"), agent.get("token")
        killed = False
        if isinstance(pgid, int) and pgid > 0 and isinstance(token, str):
            if await asyncio.to_thread(_group_is_ours, pgid, token):
                killed = True
                await procs.terminate_group(pgid, grace, zombies=True)
        existing = await asyncio.to_thread(_read_exit, self.run_dir)
        if existing is not None:
            return existing
        if killed:
            detail = "cancelled; the agent's supervisor was gone, so its process group was killed directly"
            info = ExitInfo(None, None, "cancelled", detail, time.time())
        else:
            info = ExitInfo(None, None, "lost", LOST_DETAIL, time.time())
        return await asyncio.to_thread(_write_exit_once, self.run_dir, info)
