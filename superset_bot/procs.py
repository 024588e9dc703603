"""Process groups: start a command as the leader of its own group, signal or end the whole group,
and find a group's members (or processes carrying an environment marker) through /proc.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

PROC = Path("/proc")
POLL_INTERVAL = 0.05  # seconds between looks at a group that was asked to end

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.SubprocessProtocol)


# --------------------------------------------------------------------------- starting


async def start_in_group(program: str, *args: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """`asyncio.create_subprocess_exec` in a new session: the child's pid is its process group id.

    `kwargs` go to `create_subprocess_exec` unchanged (stdin, stdout, env, cwd, ...).
    """
    return await asyncio.create_subprocess_exec(program, *args, start_new_session=True, **kwargs)


async def start_shell_in_group(
    protocol_factory: Callable[[], _ProtocolT], command: str, **kwargs: Any
) -> tuple[asyncio.SubprocessTransport, _ProtocolT]:
    """`loop.subprocess_shell` in a new session: `transport.get_pid()` is the process group id.

    `kwargs` go to `subprocess_shell` unchanged (stdin, stdout, stderr, cwd, env, ...).
    """
    loop = asyncio.get_running_loop()
    return await loop.subprocess_shell(protocol_factory, command, start_new_session=True, **kwargs)


# --------------------------------------------------------------------------- signalling


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when nothing in it could be signalled.

    A `pgid` of 0 or less is refused without a signal (False): `killpg(0)` would signal the
    bot's own group. A group that no longer exists (ProcessLookupError) or whose members
    changed uid (PermissionError) also gives False. Signal 0 only asks whether the group exists.
    """
    if pgid <= 0:
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a group member changed uid; nothing we may do
        return False
    return True


async def terminate_group(
    pgid: int, grace: float, *, zombies: bool = False, poll: float = POLL_INTERVAL
) -> bool:
    """SIGTERM the whole group, then SIGKILL whatever is still there after `grace` seconds.

    The group is looked at every `poll` seconds (at least once) and the wait ends as soon as it
    is empty. Zombies, which wait on a parent that may never reap them, count as gone unless
    `zombies` is true. Returns False when the group was already gone before the SIGTERM.
    """
    if not signal_group(pgid, signal.SIGTERM):
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(grace, poll)
    while loop.time() < deadline:
        await asyncio.sleep(poll)
        if not await asyncio.to_thread(group_alive, pgid, zombies=zombies):
            return True
    signal_group(pgid, signal.SIGKILL)
    return True


# --------------------------------------------------------------------------- scanning /proc


def _stat_fields(pid: str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, ...; None if unreadable."""
    try:
        raw = (PROC / pid / "stat").read_bytes()
    except OSError:
        return None
    _, paren, tail = raw.rpartition(b")")  # the command name may itself contain ")"
    return tail.split() if paren else None


def group_members(pgid: int, *, zombies: bool = True) -> list[int]:
    """Pids whose process group is `pgid`, from /proc; zombies included unless `zombies` is false."""
    wanted = str(pgid).encode()
    members = []
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        fields = _stat_fields(name)
        if fields is None or len(fields) <= 2 or fields[2] != wanted:
            continue
        if zombies or fields[0] != b"Z":
            members.append(int(name))
    return members


def group_alive(pgid: int, *, zombies: bool = False) -> bool:
    """True while the group has a member; a zombie counts only when `zombies` is true.

    Without /proc (not Linux) the group's existence is all that can be known.
    """
    if not signal_group(pgid, 0):
        return False
    if not PROC.is_dir():  # pragma: no cover - not Linux: trust kill(0)
        return True
    return bool(group_members(pgid, zombies=zombies))


def processes_with_env(entry: str, pids: Iterable[int] | None = None) -> list[int]:
    """Pids (of `pids`, else of every process) whose environment holds exactly `entry` ("NAME=value").

    Only processes whose /proc/PID/environ can be read are found: our own user's.
    """
    marker = entry.encode()
    if pids is None:
        pids = [int(name) for name in os.listdir(PROC) if name.isdigit()]
    found = []
    for pid in pids:
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(pid)
    return found
