"""The agent runner with real supervised subprocesses (scripted agents in tests/agents/)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from superset_bot.agents.runner import AgentRun, ExitInfo, RunLimits, RunnerError
from superset_bot.redact import Redactor, agent_environment, secret_values

MiB = 1024 * 1024
AGENTS_DIR = Path(__file__).parents[1] / "agents"


def agent(name: str, *args: object) -> list[str]:
    return [sys.executable, str(AGENTS_DIR / name), *(str(a) for a in args)]


def env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8", **extra}


def agent_pgid(run: AgentRun) -> int:
    return int(json.loads((run.run_dir / "agent.json").read_text())["pgid"])


def gone(pid: int, group: bool = False) -> bool:
    """No such process (or group) any more; a zombie awaiting its reaper counts as gone."""
    try:
        os.killpg(pid, 0) if group else os.kill(pid, 0)
    except ProcessLookupError:
        return True
    if group:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def collect(run: AgentRun, start: int = 0, **kwargs: int) -> list[tuple[int, str]]:
    return [item async for item in run.lines(start, **kwargs)]


@pytest.fixture
async def runs(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """start(name_or_argv, ...) -> AgentRun; anything still running is cancelled afterwards."""
    started: list[AgentRun] = []
    counter = 0

    async def start(argv: list[str], limits: RunLimits = RunLimits(), **kwargs: object) -> AgentRun:
        nonlocal counter
        counter += 1
        kwargs.setdefault("env", env())
        kwargs.setdefault("cwd", tmp_path)
        run = await AgentRun.start(tmp_path / f"run{counter}", argv, limits=limits, **kwargs)  # type: ignore[arg-type]
        started.append(run)
        return run

    yield start
    for run in started:
        if run.is_alive():
            await run.cancel(grace=0)


@pytest.mark.parametrize("code", [0, 3])
async def test_lines_complete_in_order_with_exit_code(runs, code: int) -> None:
    run = await runs(agent("print_lines.py", 6, "--exit", code))
    lines = await collect(run)
    expected = []
    for i in range(1, 7):
        expected.append(f"line {i}")
        if i % 2 == 0:
            expected.append(f"stderr {i}")  # stderr is merged into the same log
    assert [text for _, text in lines] == expected
    positions = [pos for pos, _ in lines]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    info = await run.wait()
    assert info == ExitInfo(code, None, "exited", f"exited with code {code}", info.ended_at)
    assert info.ok is (code == 0)
    assert await eventually(lambda: not run.is_alive())  # the supervisor ends once it recorded the exit
    assert await eventually(lambda: gone(agent_pgid(run), group=True))


async def test_output_over_the_cap_keeps_head_and_tail_in_bounded_memory(runs) -> None:
    cap = 4 * MiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    run = await runs(agent("flood.py", 200), RunLimits(output=cap))
    info = await run.wait()
    assert info.ok, info
    on_disk = sum(p.stat().st_size for p in (run.run_dir / "log").iterdir())
    assert on_disk <= cap

    heads: list[str] = []
    markers: list[tuple[int, str]] = []
    blocks: list[int] = []
    count = 0
    last: tuple[int, str] = (0, "")
    async for pos, line in run.lines():
        count += 1
        if count <= 3:
            heads.append(line)
        if line.startswith("[superset-bot:"):
            markers.append((pos, line))
        elif line.startswith("block "):
            blocks.append(int(line.split()[1]))
        assert pos > last[0]
        last = (pos, line)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    assert heads[0] == "block 0" and heads[1].startswith("0 xxx")
    assert len(markers) == 1
    assert markers[0][1].endswith("MiB of output dropped]")
    dropped_mib = float(markers[0][1].split()[1])
    assert 190 < dropped_mib < 200
    assert blocks == sorted(blocks) and blocks[0] == 0 and blocks[-1] == 199
    assert last[1] == "FINAL LINE"
    assert last[0] == json.loads((run.run_dir / "exit.json").read_text())["output_bytes"]
    assert count < 100_000  # about 4 MiB of ~100-byte lines, not 200 MiB
    assert after - before < 64 * MiB


async def test_live_reader_sees_each_line_once_in_order(runs) -> None:
    run = await runs(agent("flood.py", 30), RunLimits(output=MiB))
    block = -1  # the block the lines being read belong to
    after_gap = False
    last_pos = 0
    final = ""
    async for pos, line in run.lines():
        assert pos > last_pos
        last_pos = pos
        final = line
        if line.startswith("[superset-bot:"):
            after_gap = True  # a reader that falls behind the cap skips a stretch, once per gap
        elif line.startswith("block "):
            assert int(line.split()[1]) > block
            block = int(line.split()[1])
            after_gap = False
        elif line[:1].isdigit():
            number = int(line.split()[0])
            assert number == block or (after_gap and number > block)
            block = number
    assert final == "FINAL LINE"
    assert block == 29
    assert (await run.wait()).ok


async def test_restart_from_any_stored_position_loses_and_doubles_nothing(runs) -> None:
    run = await runs(agent("flood.py", 3), RunLimits(output=256 * 1024))
    await run.wait()
    full = await collect(run)
    marker = next(i for i, (_, text) in enumerate(full) if text.startswith("[superset-bot:"))
    for i in (0, 1, marker - 1, marker, marker + 1, len(full) // 2, len(full) - 2, len(full) - 1):
        assert await collect(run, full[i][0]) == full[i + 1 :], i
    assert full[-1][1] == "FINAL LINE"
    # a position inside the dropped stretch resumes with the marker and then the tail
    inside = full[marker - 1][0] + 1000
    resumed = await collect(run, inside)
    assert resumed[0][1].startswith("[superset-bot:") and resumed[1:] == full[marker + 1 :]


async def test_long_line_comes_in_pieces_without_splitting_characters_or_secrets(runs) -> None:
    secret = "sk-live-0123456789abcdef"
    run = await runs(agent("long_line.py", 200_000, secret), redactor=Redactor([secret]))
    pieces = await collect(run, max_line=4096)
    assert pieces[-1][1] == "after"
    body = [text for _, text in pieces[:-1]]
    assert len(body) > 40
    assert all(len(text.encode()) <= 4096 + len(secret) for text in body)
    unit = "abc€defgh" + secret
    expected = (unit * (200_000 // len(unit.encode()))).replace(secret, "[redacted]")
    assert "".join(body) == expected
    assert "\ufffd" not in "".join(body)
    # restarting in the middle of the long line continues it exactly
    assert await collect(run, pieces[5][0], max_line=4096) == pieces[6:]


async def test_timeout_ends_the_group(runs) -> None:
    run = await runs(agent("sleep_forever.py"), RunLimits(timeout=1))
    info = await run.wait()
    assert info.reason == "timeout"
    assert "time limit 1s reached" in info.detail
    assert info.signal == signal.SIGTERM
    assert not info.ok
    assert await eventually(lambda: gone(agent_pgid(run), group=True))
    assert [text for _, text in await collect(run)][0].startswith("started ")


async def test_memory_limit(runs) -> None:
    run = await runs(agent("alloc_memory.py", 500), RunLimits(memory=100 * MiB))
    info = await run.wait()
    assert info.reason == "memory", info
    assert info.detail.startswith("memory limit 100.0 MiB exceeded (RSS ")
    assert await eventually(lambda: gone(agent_pgid(run), group=True))


async def test_cpu_limit(runs) -> None:
    run = await runs(agent("burn_cpu.py"), RunLimits(cpu=1, timeout=60))
    info = await run.wait()
    assert info.reason == "cpu", info
    assert "CPU limit 1s exceeded" in info.detail
    assert await eventually(lambda: gone(agent_pgid(run), group=True))


async def test_cancel_kills_a_group_that_ignores_sigterm(runs) -> None:
    run = await runs(agent("ignore_sigterm.py"))
    pids: dict[str, int] = {}
    async for _, line in run.lines():
        who, pid = line.split()
        pids[who] = int(pid)
        if len(pids) == 2:
            break
    info = await run.cancel(grace=0.5)
    assert info.reason == "cancelled"
    assert info.signal == signal.SIGKILL
    assert "ignoring SIGTERM" in info.detail
    assert await eventually(lambda: gone(pids["parent"]) and gone(pids["child"]))
    assert await eventually(lambda: gone(agent_pgid(run), group=True))
    # the supervisor records the exit, then ends: on a busy machine the second step can lag the first
    assert await eventually(lambda: not run.is_alive())
    assert await run.cancel() == info  # cancelling again just reports the same ending


async def test_processes_left_behind_by_the_agent_are_ended(runs) -> None:
    run = await runs(agent("leave_child.py"), grace=1)
    lines = await collect(run)  # ends although the child still held the output pipe open
    child = int(lines[0][1].split()[1])
    info = await run.wait()
    assert info.ok, info
    assert await eventually(lambda: gone(child))


async def test_detached_run_survives_its_handle_and_is_attached_again(runs, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = await runs(agent("print_lines.py", 30, "--exit", 5, "--gate", gate, "--gate-after", 10))
    run_dir, pid = run.run_dir, run.pid
    seen: list[tuple[int, str]] = []
    async for item in run.lines():
        seen.append(item)
        if item[1] == "line 10":
            break
    stored = seen[-1][0]
    del run
    gc.collect()

    again = AgentRun.attach(run_dir)
    assert again.pid == pid and again.is_alive()
    assert again.exit_info() is None
    gate.touch()  # the agent now finishes while nobody reads or waits
    assert await eventually(lambda: (run_dir / "exit.json").exists())

    later = AgentRun.attach(run_dir)
    info = later.exit_info()
    assert info is not None and info.reason == "exited" and info.code == 5
    rest = await collect(later, stored)
    texts = [text for _, text in seen] + [text for _, text in rest]
    assert texts.count("line 10") == 1 and texts.count("line 11") == 1
    assert [t for t in texts if t.startswith("line ")] == [f"line {i}" for i in range(1, 31)]
    assert rest[0][1] == "stderr 10"  # what was printed right after line 10


async def test_attach_to_a_directory_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="no agent run"):
        AgentRun.attach(tmp_path)


async def test_lost_supervisor_is_reported_and_cancel_kills_the_group_directly(runs) -> None:
    run = await runs(agent("sleep_forever.py"))
    async for _, line in run.lines():
        agent_pid = int(line.split()[1])
        break
    os.kill(run.pid, signal.SIGKILL)
    assert await eventually(lambda: not run.is_alive())
    info = run.exit_info()
    assert info is not None and info.reason == "lost"
    assert "supervisor died" in info.detail
    assert [text for _, text in await collect(run)] == [f"started {agent_pid}"]  # ends, no hang
    assert not gone(agent_pid)
    cancelled = await run.cancel(grace=0.2)
    assert cancelled.reason == "cancelled"
    assert await eventually(lambda: gone(agent_pid))
    assert run.exit_info() == cancelled  # recorded, so later readers agree


async def test_secrets_are_redacted_and_bot_credentials_never_reach_the_agent(runs) -> None:
    base = env(ANTHROPIC_API_KEY="sk-ant-test-1234567890", SLACK_BOT_TOKEN="xoxb-bot-token-123456")
    agent_env = agent_environment(base, {"EXTRA": "plain"})
    assert "SLACK_BOT_TOKEN" not in agent_env and agent_env["GIT_TERMINAL_PROMPT"] == "0"
    redactor = Redactor(secret_values(base))
    run = await runs(
        agent("print_env.py", "ANTHROPIC_API_KEY", "SLACK_BOT_TOKEN", "EXTRA", "GIT_TERMINAL_PROMPT"),
        env=agent_env,
        redactor=redactor,
    )
    assert [text for _, text in await collect(run)] == [
        "ANTHROPIC_API_KEY=[redacted]",
        "SLACK_BOT_TOKEN=<unset>",
        "EXTRA=plain",
        "GIT_TERMINAL_PROMPT=0",
    ]
    # an attached handle without a redactor reads the raw log: redaction is the reader's choice
    raw = [text for _, text in await collect(AgentRun.attach(run.run_dir))]
    assert raw[0] == "ANTHROPIC_API_KEY=sk-ant-test-1234567890"


async def test_command_not_on_path(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="'no-such-agent-cli' was not found"):
        await AgentRun.start(tmp_path / "run", ["no-such-agent-cli", "-p", "hi"], tmp_path, env())
    assert not (tmp_path / "run" / "pid").exists()


async def test_missing_working_directory(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="working directory .*nowhere does not exist"):
        await AgentRun.start(tmp_path / "run", ["true"], tmp_path / "nowhere", env())


async def test_command_that_cannot_be_executed(tmp_path: Path) -> None:
    script = tmp_path / "broken-agent"
    script.write_bytes(b"\x00\x01not a program")
    script.chmod(0o755)
    with pytest.raises(RunnerError, match="could not start"):
        await AgentRun.start(tmp_path / "run", [str(script)], tmp_path, env())
    info = AgentRun.attach(tmp_path / "run").exit_info()
    assert info is not None and info.code == 126


async def test_run_directory_is_not_reused(runs, tmp_path: Path) -> None:
    run = await runs(agent("print_lines.py", 1))
    await run.wait()
    with pytest.raises(RunnerError, match="already holds a run"):
        await AgentRun.start(run.run_dir, agent("print_lines.py", 1), tmp_path, env())


def test_limits_are_validated() -> None:
    with pytest.raises(RunnerError, match="memory"):
        RunLimits(memory=-1)
