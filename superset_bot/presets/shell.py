"""Running shell commands (setup, checks, lifecycle hooks) through /bin/sh, each in its own process
group, streaming their output lines and stopping the whole group at a timeout or cancellation.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import inspect
import logging
import re
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from superset_bot import procs
from superset_bot.units import format_duration

log = logging.getLogger(__name__)

LineCallback = Callable[[str], Awaitable[None] | None]

_READ_LIMIT_LINES = 1000  # pause reading while this many lines wait for a slow on_line
_MAX_LINE = 4000  # characters; longer lines are split
_TERM_GRACE = 2.0  # SIGTERM -> SIGKILL
_LINGER_GRACE = 1.0  # after the command exits, how long a background child may keep its output open
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


@dataclass(frozen=True)
class CommandResult:
    """One shell command's outcome; `exit_code` is None when it could not start."""

    command: str
    exit_code: int | None
    timed_out: bool
    output_tail: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _LineSplitter:
    """Bytes in, bounded text lines out: UTF-8 across chunk edges, \\r progress collapsed, ANSI dropped."""

    def __init__(self, max_line: int = _MAX_LINE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._max = max_line

    def _clean(self, line: str) -> list[str]:
        line = _ANSI.sub("", line).rstrip("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        return [line[i : i + self._max] for i in range(0, len(line), self._max)] or [""]

    def feed(self, data: bytes) -> list[str]:
        parts = (self._buf + self._decoder.decode(data)).split("\n")
        self._buf = parts.pop()
        lines = [piece for part in parts for piece in self._clean(part)]
        while len(self._buf) > self._max:
            lines.extend(self._clean(self._buf[: self._max]))
            self._buf = self._buf[self._max :]
        return lines

    def close(self) -> list[str]:
        rest = self._buf + self._decoder.decode(b"", final=True)
        self._buf = ""
        return self._clean(rest) if rest else []


class _ShellProtocol(asyncio.SubprocessProtocol):
    """Feeds output lines into a queue and notes when the shell exits and when output ends.

    Exit and end-of-output are separate on purpose: a background child can keep the pipe
    open after the command itself has finished.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self._splitter = _LineSplitter()
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        for line in self._splitter.feed(data if isinstance(data, bytes) else data.encode()):
            self.lines.put_nowait(line)
        if not self._paused and self.lines.qsize() > _READ_LIMIT_LINES and self.transport is not None:
            pipe = self.transport.get_pipe_transport(1)
            if isinstance(pipe, asyncio.ReadTransport):
                pipe.pause_reading()
                self._paused = True

    @property
    def paused(self) -> bool:
        return self._paused

    def resume_if_drained(self) -> None:
        if self._paused and self.lines.qsize() < _READ_LIMIT_LINES // 2 and self.transport is not None:
            pipe = self.transport.get_pipe_transport(1)
            if isinstance(pipe, asyncio.ReadTransport) and not pipe.is_closing():
                pipe.resume_reading()
            self._paused = False

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd != 1 or self.eof.done():
            return
        for line in self._splitter.close():
            self.lines.put_nowait(line)
        self.lines.put_nowait(None)
        self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def _wait_eof(proto: _ShellProtocol, grace: float) -> bool:
    """Wait for the end of output; time spent behind a slow on_line (reading paused) does not count."""
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(proto.eof), grace)
            return True
        except TimeoutError:
            if not proto.paused:
                return False


async def emit_line(on_line: LineCallback | None, line: str) -> None:
    """Hand `line` to `on_line` (sync or async); a failing callback is logged, never raised."""
    if on_line is None:
        return
    try:
        result = on_line(line)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:  # a broken display callback must not break setup
        log.exception("on_line callback failed")


async def _run_one(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: LineCallback | None,
    tail_lines: int,
) -> CommandResult:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tail: deque[str] = deque(maxlen=max(tail_lines, 1))
    # Shielded: cancelled mid-start, asyncio would kill only the shell, not what it already forked.
    creation = asyncio.ensure_future(
        procs.start_shell_in_group(
            lambda: _ShellProtocol(loop),
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(cwd),
            env=dict(env),
        )
    )
    try:
        transport, proto = await asyncio.shield(creation)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            transport, proto = await creation
            procs.signal_group(transport.get_pid(), signal.SIGKILL)
            await asyncio.wait_for(asyncio.shield(proto.exited), _TERM_GRACE)
            transport.close()
        raise
    except OSError as exc:
        message = f"could not start in {cwd}: {exc.strerror or exc}"
        await emit_line(on_line, message)
        return CommandResult(command, None, False, message, loop.time() - start)
    pgid = transport.get_pid()

    async def consume() -> None:
        while True:
            line = await proto.lines.get()
            if line is None:
                return
            tail.append(line)
            await emit_line(on_line, line)
            proto.resume_if_drained()

    consumer = asyncio.ensure_future(consume())
    timed_out = lingering = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(proto.exited), timeout)
        except TimeoutError:
            timed_out = True
            await procs.terminate_group(pgid, _TERM_GRACE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.exited), _TERM_GRACE)
        if not await _wait_eof(proto, _LINGER_GRACE):
            # Something the command started in the background still holds its output open.
            lingering = True
            await procs.terminate_group(pgid, _TERM_GRACE)
            await _wait_eof(proto, _TERM_GRACE)
        if proto.eof.done():
            await consumer  # the rest of the lines, however slow on_line is
        if lingering:
            note = "[superset-bot] stopped background processes that kept this command's output open"
            tail.append(note)
            await emit_line(on_line, note)
    except asyncio.CancelledError:
        procs.signal_group(pgid, signal.SIGKILL)
        # SIGKILL is immediate; wait the moment it takes to be reaped so nothing is left half-open.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(proto.exited), _TERM_GRACE)
        raise
    finally:
        if not consumer.done():
            consumer.cancel()
        transport.close()
    exit_code = transport.get_returncode()
    return CommandResult(command, exit_code, timed_out, "\n".join(tail), loop.time() - start)


async def run_shell_commands(
    commands: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: LineCallback | None = None,
    tail_lines: int = 40,
    *,
    announce: bool = False,
) -> list[CommandResult]:
    """Run shell commands one after another, stopping at the first failure.

    `timeout` is the total for the whole list (a command that would start after it is spent
    is reported as timed out without running). Each command runs through /bin/sh in its own
    process group with stdout and stderr merged and stdin closed; every output line goes to
    `on_line` as it arrives and the last `tail_lines` are kept. At the timeout the whole
    group gets SIGTERM, then SIGKILL 2 s later. Background processes that keep the output
    open after the command exits are stopped too (send them to a file if they must live).
    `env` is the complete environment. With `announce`, `$ command` is sent to `on_line` first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    results: list[CommandResult] = []
    for command in commands:
        remaining = deadline - loop.time()
        if remaining <= 0:
            results.append(CommandResult(command, None, True, "not started: no time left", 0.0))
            break
        if announce:
            await emit_line(on_line, f"$ {command}")
        result = await _run_one(command, cwd, env, remaining, on_line, tail_lines)
        results.append(result)
        if not result.ok:
            break
    return results


def short_duration(seconds: float) -> str:
    """'10m', '2h', '45s', '0.2s' for whole units, else '3m 05s' (for messages)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds < 60:
        return f"{seconds:g}s"
    return format_duration(seconds)


def describe_failure(result: CommandResult, label: str, timeout: float | None = None) -> str:
    """A sentence for a failed command, e.g. 'setup command "npm ci" exited with code 1'."""
    if result.timed_out:
        after = f" after {short_duration(timeout)}" if timeout is not None else ""
        return f'{label} timed out{after} (while running "{result.command}")'
    if result.exit_code is None:
        detail = result.output_tail.splitlines()[-1] if result.output_tail else "it could not start"
        return f'{label} command "{result.command}" could not start: {detail}'
    if result.exit_code < 0:
        try:
            name = signal.Signals(-result.exit_code).name
        except ValueError:
            name = f"signal {-result.exit_code}"
        return f'{label} command "{result.command}" was killed by {name}'
    return f'{label} command "{result.command}" exited with code {result.exit_code}'
