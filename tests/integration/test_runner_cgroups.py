"""Hard limits through cgroup v2: the supervisor makes the agent's cgroup, writes its limits, moves the
agent in before it runs, reads the kernel's events (a kill for memory, a refused fork) and stops the
rest of the agent with that reason. Against a folder standing in for cgroupfs everywhere; against the
kernel where this host delegates a cgroup v2 subtree to the tests (otherwise skipped, with why)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from superset_bot.agents import cgroups
from superset_bot.agents.runner import AgentRun, RunLimits

AGENTS_DIR = Path(__file__).parents[1] / "agents"
DELEGATION = cgroups.find()


def agent(name: str, *args: object) -> list[str]:
    return [sys.executable, str(AGENTS_DIR / name), *(str(a) for a in args)]


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[list[AgentRun]]:
    runs: list[AgentRun] = []
    yield runs
    for run in runs:
        if run.is_alive():
            await run.cancel(grace=0)


async def start(runs: list[AgentRun], tmp_path: Path, argv: list[str], cgroup: dict[str, str],
                limits: RunLimits = RunLimits()) -> AgentRun:
    run = await AgentRun.start(tmp_path / f"run{len(runs)}", argv, tmp_path, {"PATH": "/usr/bin:/bin"}, limits,
                               cgroup=cgroup)
    runs.append(run)
    return run


async def test_the_agent_runs_in_its_cgroup_with_its_limits_written(tmp_path: Path, started: list[AgentRun]) -> None:
    group = tmp_path / "cgroupfs" / "agents" / "t1-1"
    group.mkdir(parents=True)
    (group / "cgroup.procs").write_text("")  # the kernel's interface files are there from the start
    run = await start(started, tmp_path, agent("print_lines.py", 2), {"path": str(group), "memory.max": "104857600",
                                                                       "pids.max": "64", "cpu.max": "50000 100000"})
    info = await run.wait()
    assert info.reason == "exited" and info.code == 0
    assert (group / "memory.max").read_text() == "104857600\n" and (group / "pids.max").read_text() == "64\n"
    assert (group / "cpu.max").read_text() == "50000 100000\n"
    assert (group / "cgroup.procs").read_text() == "0\n", "the agent moved itself in before it ran"


async def test_a_refused_fork_stops_the_agent_with_reason_pids(tmp_path: Path, started: list[AgentRun]) -> None:
    group = tmp_path / "cgroupfs" / "agents" / "t1-1"
    group.mkdir(parents=True)
    (group / "pids.events").write_text("max 3\n")  # what the kernel writes once a fork hit pids.max
    run = await start(started, tmp_path, agent("sleep_forever.py"), {"path": str(group), "pids.max": "16"})
    info = await run.wait()
    assert info.reason == "pids" and info.detail.startswith("process limit 16 reached"), info


async def test_a_kernel_memory_kill_is_the_reason_memory(tmp_path: Path, started: list[AgentRun]) -> None:
    group = tmp_path / "cgroupfs" / "agents" / "t1-1"
    group.mkdir(parents=True)
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    run = await start(started, tmp_path, agent("sleep_forever.py"), {"path": str(group), "memory.max": "104857600"})
    info = await run.wait()
    assert info.reason == "memory" and "the kernel stopped it" in info.detail and "100.0 MiB" in info.detail


async def test_a_cgroup_that_cannot_be_made_leaves_the_limits_soft(tmp_path: Path, started: list[AgentRun]) -> None:
    run = await start(started, tmp_path, agent("print_lines.py", 1),
                      {"path": str(tmp_path / "missing" / "parent" / "t1"), "memory.max": "1000"})
    info = await run.wait()
    assert info.reason == "exited" and info.code == 0, "the run goes on, polled as before"


def fake_mount(tmp_path: Path, controllers: str = "cpu memory pids") -> tuple[Path, Path]:
    mount = tmp_path / "cgroup"
    root = mount / "system.slice" / "superset-bot.service"
    root.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpu memory pids io\n")
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/system.slice/superset-bot.service\n")
    return mount, proc


def test_a_delegated_subtree_is_found_prepared_and_found_again_after_a_restart(tmp_path: Path) -> None:
    mount, proc = fake_mount(tmp_path)
    found = cgroups.find(mount, proc)
    root = mount / "system.slice" / "superset-bot.service"
    assert found.hard and found.agents == root / "agents"
    prepared = cgroups.prepare(found)
    assert prepared.hard and (root / "bot" / "cgroup.procs").read_text().strip().isdigit()
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu\n"
    assert (root / "agents" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu\n"
    proc.write_text("0::/system.slice/superset-bot.service/bot\n")  # where the bot lives after it
    assert cgroups.find(mount, proc).agents == root / "agents"
    (root / "agents").rename(root / "agents.kept")  # DelegateSubgroup=bot: in the leaf before any prepare
    assert cgroups.find(mount, proc).agents == root / "agents"
    (root / "agents.kept").rename(root / "agents")
    files = cgroups.limits(prepared, "t1-1", memory=2**30, pids=256, cpus=1.5)
    assert files == {"path": str(root / "agents" / "t1-1"), "memory.max": str(2**30), "memory.swap.max": "0",
                     "pids.max": "256", "cpu.max": "150000 100000"}
    assert cgroups.limits(prepared, "t1-1", memory=None, pids=None, cpus=None) is None


def test_without_delegation_the_reason_says_what_to_do(tmp_path: Path) -> None:
    mount, proc = fake_mount(tmp_path)
    proc.write_text("0::/user.slice/user-1000.slice/session-3.scope\n")
    (mount / "user.slice" / "user-1000.slice" / "session-3.scope").mkdir(parents=True)
    assert "not in a systemd service of its own" in cgroups.find(mount, proc).why_not, "a login session is not ours"
    proc.write_text("0::/system.slice/superset-bot.service\n")
    (mount / "system.slice" / "superset-bot.service" / "cgroup.controllers").write_text("cpu\n")
    assert "no memory, pids controller" in cgroups.find(mount, proc).why_not
    assert "Delegate=yes" in cgroups.find(mount, proc).why_not
    proc.write_text("12:memory:/x\n0::/\n")
    (mount / "cgroup.controllers").unlink()
    assert cgroups.find(mount, proc).why_not.startswith("no cgroup v2")
    assert cgroups.limits(cgroups.find(mount, proc), "t", memory=1, pids=1, cpus=1) is None


@pytest.mark.skipif(not DELEGATION.hard, reason=f"no delegated cgroup v2 here: {DELEGATION.why_not}")
async def test_the_kernel_stops_a_memory_hog_and_a_fork_bomb(tmp_path: Path, started: list[AgentRun]) -> None:
    prepared = cgroups.prepare(DELEGATION)
    hog = await start(started, tmp_path, agent("alloc_memory.py", 500),
                      cgroups.limits(prepared, "hog", memory=100 * 2**20, pids=None, cpus=None) or {})
    assert (await hog.wait()).reason == "memory"
    bomb = await start(started, tmp_path, agent("fork_bomb.py", 500),
                       cgroups.limits(prepared, "bomb", memory=None, pids=32, cpus=None) or {})
    assert (await bomb.wait()).reason == "pids"


def test_preset_process_and_cpu_limits() -> None:
    from superset_bot.presets import PresetError
    from superset_bot.presets.schema import parse_preset

    preset = parse_preset("p", {"agent": {"command": ["true"]}, "limits": {"pids": 256, "cpus": 1.5, "memory": "2G"}})
    assert (preset.limits.pids, preset.limits.cpus, preset.limits.memory) == (256, 1.5, 2 * 2**30)
    for bad in ({"pids": 0}, {"pids": 1.5}, {"cpus": -1}, {"cpus": True}):
        with pytest.raises(PresetError, match="expected a positive"):
            parse_preset("p", {"agent": {"command": ["true"]}, "limits": bad})


async def test_a_review_says_its_limits_were_soft(harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from support.engineharness import agent_preset

    h = await harness({"edit": agent_preset("edit", limits={"memory": "1G"})})
    task = await h.engine.spawn("add the feature", requester="U1")
    done = await h.settled(task.id)
    notes = (done.review_data() or {}).get("notes") or []
    assert notes == ["Its limits were soft (polled, not kernel-enforced): SUPERSET_CGROUPS is off."]
