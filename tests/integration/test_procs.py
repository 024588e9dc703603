"""The process-group toolkit on real processes: starting, signalling, ending and finding groups."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from superset_bot import procs

DEVNULL = asyncio.subprocess.DEVNULL


def state(pid: int) -> str | None:
    """The process's state letter from /proc ("S", "Z", ...), None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.rsplit(")", 1)[1].split()[0]


def dead(pid: int) -> bool:
    """Gone, or a zombie that only waits for its reaper."""
    return state(pid) in (None, "Z")


async def until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Register every group a test starts: afterwards none may have a live member left."""
    started: list[int] = []
    yield started
    leftover = [pgid for pgid in started if procs.group_alive(pgid)]
    for pgid in leftover:
        procs.signal_group(pgid, signal.SIGKILL)
    assert not leftover, f"process groups still running after the test: {leftover}"


async def test_a_sleep_group_is_killed_and_gone(groups: list[int]) -> None:
    proc = await procs.start_in_group("sleep", "60", stdin=DEVNULL)
    groups.append(proc.pid)
    assert os.getpgid(proc.pid) == proc.pid != os.getpgrp()
    assert procs.group_members(proc.pid) == [proc.pid]
    assert procs.group_alive(proc.pid)

    assert procs.signal_group(proc.pid, signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    assert procs.group_members(proc.pid) == []
    assert not procs.group_alive(proc.pid)
    assert not procs.signal_group(proc.pid, 0)  # the group no longer exists at all


async def test_terminate_group_ends_every_member_with_sigterm(groups: list[int]) -> None:
    proc = await procs.start_in_group("sh", "-c", "sleep 60 & sleep 60 & wait", stdin=DEVNULL)
    groups.append(proc.pid)
    assert await until(lambda: len(procs.group_members(proc.pid)) == 3)
    members = procs.group_members(proc.pid)

    started = time.monotonic()
    assert await procs.terminate_group(proc.pid, grace=10.0)
    assert time.monotonic() - started < 5.0  # ended at SIGTERM, no need to wait out the grace
    assert await proc.wait() == -signal.SIGTERM
    assert await until(lambda: all(dead(pid) for pid in members))
    assert not procs.group_alive(proc.pid)


async def test_a_group_ignoring_sigterm_gets_sigkill_after_the_grace(groups: list[int]) -> None:
    proc = await procs.start_in_group("sh", "-c", "trap '' TERM; sleep 60 & wait", stdin=DEVNULL)
    groups.append(proc.pid)
    # the background sleep runs only once the trap is set, and inherits it
    assert await until(lambda: len(procs.group_members(proc.pid)) == 2)
    members = procs.group_members(proc.pid)

    started = time.monotonic()
    assert await procs.terminate_group(proc.pid, grace=0.3)
    assert time.monotonic() - started >= 0.3
    assert await proc.wait() == -signal.SIGKILL
    assert await until(lambda: all(dead(pid) for pid in members))
    assert not procs.group_alive(proc.pid)


async def test_terminate_group_reports_a_group_that_is_already_gone(groups: list[int]) -> None:
    proc = await procs.start_in_group("true", stdin=DEVNULL)
    groups.append(proc.pid)
    assert await proc.wait() == 0
    assert not await procs.terminate_group(proc.pid, grace=5.0)


async def test_a_shell_started_in_its_own_group_is_the_leader(groups: list[int]) -> None:
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    class Protocol(asyncio.SubprocessProtocol):
        def process_exited(self) -> None:
            if not exited.done():
                exited.set_result(None)

    transport, _ = await procs.start_shell_in_group(
        Protocol, "sleep 60 & wait", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL
    )
    pgid = transport.get_pid()
    groups.append(pgid)
    try:
        assert os.getpgid(pgid) == pgid != os.getpgrp()
        assert await until(lambda: len(procs.group_members(pgid)) == 2)
        members = procs.group_members(pgid)
        assert procs.signal_group(pgid, signal.SIGKILL)
        await asyncio.wait_for(exited, 10)
        assert transport.get_returncode() == -signal.SIGKILL
        assert await until(lambda: all(dead(pid) for pid in members))
        assert not procs.group_alive(pgid)
    finally:
        transport.close()


def test_signal_group_refuses_group_zero_and_below() -> None:
    # killpg(0) would reach the test's own group; signal 0 keeps the check harmless either way
    assert not procs.signal_group(0, 0)
    assert not procs.signal_group(-1, 0)
    assert procs.signal_group(os.getpgrp(), 0)


async def test_a_proc_scan_finds_the_process_carrying_a_marker(groups: list[int]) -> None:
    token = uuid.uuid4().hex
    env = {"PATH": os.environ.get("PATH", os.defpath), "SUPERSET_PROCS_TEST": token}
    proc = await procs.start_in_group("sleep", "60", stdin=DEVNULL, env=env)
    groups.append(proc.pid)
    entry = f"SUPERSET_PROCS_TEST={token}"
    try:
        # exec may still be setting up the new environment when the parent hears it succeeded
        assert await until(lambda: procs.processes_with_env(entry) == [proc.pid])
        assert procs.processes_with_env(entry, procs.group_members(proc.pid)) == [proc.pid]
        assert procs.processes_with_env(entry, [os.getpid()]) == []
        # the whole NAME=value entry must match, not a prefix of it
        assert procs.processes_with_env(entry[:-1]) == []
    finally:
        procs.signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()


async def test_zombies_count_as_members_only_when_asked(groups: list[int]) -> None:
    child = subprocess.Popen(["true"], start_new_session=True)  # not reaped until wait(): a zombie
    groups.append(child.pid)
    try:
        assert await until(lambda: state(child.pid) == "Z")
        assert procs.group_members(child.pid) == [child.pid]
        assert procs.group_members(child.pid, zombies=False) == []
        assert not procs.group_alive(child.pid)
        assert procs.group_alive(child.pid, zombies=True)

        started = time.monotonic()
        assert await procs.terminate_group(child.pid, grace=10.0)  # a zombie is gone: first look ends it
        assert time.monotonic() - started < 5.0
        started = time.monotonic()
        assert await procs.terminate_group(child.pid, grace=0.3, zombies=True)  # waits out the grace
        assert time.monotonic() - started >= 0.3
    finally:
        child.wait()
    assert procs.group_members(child.pid) == []
