"""The Temporal runner end to end: a bot engine with SUPERSET_RUNNER=temporal, a real Temporal server
on 127.0.0.1 and two real `superset-bot worker` processes with their own clones, sharing a bare
remote with the bot's repo. The same scenarios the local runner passes, plus the faults only many
machines have: a worker killed with kill -9 mid-run, a bot restart, a server outage."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RepoFactory, git
from support.engineharness import (
    CLAUDE_SAMPLE,
    SECRET,
    FakeClock,
    Harness,
    MakeHarness,
    agent_preset,
    chatty,
    write_presets,
)
from support.gitfiles import commit_file
from support.remotes import with_remote
from support.temporal import TemporalServer, WorkerProcess, new_queue, running_server, workers
from support.waiting import eventually

from superset_bot.domain.events import Milestone, OutputLines, ProgressChanged, ReviewReady
from superset_bot.engine.errors import UserError
from superset_bot.engine.pool import MARKER
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.store import CANCELLED, DISCARDED, FINISHED, MERGED, PRUNED, QUEUED, RUNNING, Task

pytestmark = pytest.mark.timeout(240)

HEARTBEAT = "2s"


def presets(tmp_path: Path, gate: Path) -> dict[str, dict[str, Any]]:
    return {
        "edit": agent_preset("edit"),
        "gated": agent_preset("gated", env={"GATE_FILE": str(gate)}),
        "followup": agent_preset("followup"),
    }


async def remote_bot(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, server: TemporalServer,
                     queue: str, gate: Path, extra: dict[str, dict[str, Any]] | None = None,
                     clock: Callable[[], float] = time.time) -> Harness:
    repo = make_repo("demo", {"README.md": "# demo\n", "shared.txt": "base version\n"})
    with_remote(tmp_path, repo)
    return await harness(extra or presets(tmp_path, gate), repo=repo, clock=clock, env={
        "SUPERSET_RUNNER": "temporal",
        "SUPERSET_TEMPORAL_ADDRESS": server.address,
        "SUPERSET_TEMPORAL_TASK_QUEUE": queue,
        "SUPERSET_TEMPORAL_HEARTBEAT": HEARTBEAT,
        "SUPERSET_REMOTE": "origin",
    })


@contextlib.asynccontextmanager
async def temporal_rig(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, server: TemporalServer, *,
                       hosts: tuple[str, ...] = ("w1", "w2"), extra: dict[str, dict[str, Any]] | None = None,
                       clock: Callable[[], float] = time.time,
                       **host_env: str) -> AsyncIterator[tuple[Harness, dict[str, WorkerProcess], Path]]:
    """Worker processes on a queue of their own and a bot sending them its tasks: (bot, hosts, gate file)."""
    queue = new_queue()
    gate = tmp_path / "gate"
    presets_dir = write_presets(tmp_path / "host-presets", extra or presets(tmp_path, gate))
    async with workers(tmp_path, presets_dir, server, queue, hosts, **host_env) as running:
        yield await remote_bot(harness, tmp_path, make_repo, server, queue, gate, extra=extra, clock=clock), running, gate


async def first_run(h: Harness) -> Task:
    """A gated task (its gate open) run to its review: RUNS.md holds "first run"."""
    first = await h.settled((await h.engine.spawn("first run", requester="U1", preset="gated")).id, timeout=120)
    assert first.state == FINISHED, first.reason
    return first


def said(h: Harness, task_id: str, kind: str) -> list[str]:
    return [m.text for m in h.of(task_id, Milestone) if m.kind == kind]


def worker_task_ids(w: WorkerProcess) -> set[str]:
    runs = w.data / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


async def test_spawn_to_merge_through_two_workers(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory,
                                                  temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("add the feature", requester="U1", preset="edit")
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        assert done.host in hosts and done.worktree is None and done.runner == "temporal"
        # the thread heard what a local run says: the host's milestones, the agent's lines, its progress
        assert said(h, task.id, "dispatched")
        assert any("Worktree ready" in text for text in said(h, task.id, "worktree_ready"))
        assert said(h, task.id, "agent_started")
        assert h.of(task.id, ProgressChanged)
        assert [s.value for s in h.states(task.id)] == ["queued", "preparing", "running", "finished"]
        # the review is of the branch the host pushed: the agent's commit and what it left uncommitted
        review = h.of(task.id, ReviewReady)[-1].review
        assert sorted(f["path"] for f in review.files) == ["NOTES.md", "src/feature.py"]
        assert task.id in worker_task_ids(hosts[done.host])
        other = next(name for name in hosts if name != done.host)
        assert task.id not in worker_task_ids(hosts[other])

        merged = await h.engine.merge(task.id, "U1")
        assert merged.state == MERGED
        assert (h.repo / "src" / "feature.py").exists() or git(h.repo, "show", "main:src/feature.py")
        # the host removes the worktree it held
        clone_worktrees = hosts[done.host].data / "worktrees" / "demo"
        await eventually(lambda: not any(clone_worktrees.glob(f"{task.id}*")), timeout=30)


async def test_cancel_reaches_the_agent_on_its_host(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory,
                                                    temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
        running = await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
        pid = await agent_pid(hosts[running.host or ""], task.id)
        # the agent's lines reach the thread while it runs, in the turn's heartbeats
        await eventually(lambda: any("agent: mode=gated" in line for e in h.of(task.id, OutputLines)
                                     for line in e.lines), timeout=30)
        cancelled = await h.engine.cancel(task.id, "U2")
        assert cancelled.state == CANCELLED and "U2" in (cancelled.reason or "")
        assert not alive(pid)  # the agent's whole process group, on its host


async def agent_pid(host: WorkerProcess, task_id: str) -> int:
    """The process group of the task's agent on its host."""
    spec = host.data / "runs" / task_id / "1" / "agent.json"
    await eventually(spec.exists, timeout=30)
    return int(json.loads(spec.read_text())["pgid"])


def alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_follow_up_runs_on_the_host_holding_the_worktree(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        gate.touch()
        first = task = await first_run(h)
        await h.engine.followup(task.id, "second run", "U1")
        second = await h.settled(task.id, timeout=120)
        assert second.state == FINISHED, second.reason
        assert second.host == first.host and second.runs == 2
        assert git(h.repo, "show", f"{second.branch}:RUNS.md").splitlines()[-1].endswith("second run")


async def test_worker_killed_mid_run_is_noticed_and_the_task_resumes_when_it_returns(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
        running = await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
        host = hosts[running.host or ""]
        pid = await agent_pid(host, task.id)
        host.kill()
        await eventually(lambda: said(h, task.id, "host_lost"), timeout=60)
        assert alive(pid)  # the agent was detached: it works on while its host is away
        await host.start()
        gate.touch()
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        assert done.host == host.name
        assert said(h, task.id, "host_back")
        assert git(h.repo, "show", f"{done.branch}:RUNS.md").strip().endswith("wait at the gate")


async def test_retry_on_another_host_after_a_worker_is_gone(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
        running = await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
        gone = hosts[running.host or ""]
        gone.kill()
        await eventually(lambda: said(h, task.id, "host_lost"), timeout=60)
        gate.touch()
        before = len(said(h, task.id, "worktree_ready"))
        await h.engine.retry_elsewhere(task.id, "U1")
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        assert done.host != gone.name
        # the thread follows the new host from its first step, and never says the old one came back
        assert len(said(h, task.id, "worktree_ready")) == before + 1 and said(h, task.id, "agent_started")[1:]
        assert not said(h, task.id, "host_back")
        await stop_agents_of(gone)


async def stop_agents_of(host: WorkerProcess) -> None:
    from superset_bot.agents.runner import AgentRun

    for pid_file in sorted((host.data / "runs").glob("*/*/pid")):
        await AgentRun.attach(pid_file.parent).cancel(0.5)


async def test_a_bot_restart_follows_the_same_turn(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory,
                                                  temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
        await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
        await h.engine.stop()  # as a bot process stopping: the turn goes on on its host
        gate.touch()
        again = await harness(presets(tmp_path, gate), repo=h.repo, env={
            "SUPERSET_RUNNER": "temporal", "SUPERSET_TEMPORAL_ADDRESS": temporal_server.address,
            "SUPERSET_TEMPORAL_TASK_QUEUE": h.settings.temporal_task_queue, "SUPERSET_TEMPORAL_HEARTBEAT": HEARTBEAT,
            "SUPERSET_REMOTE": "origin"})
        done = await again.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        assert again.of(task.id, ReviewReady)



async def test_a_server_outage_pauses_the_task_and_it_goes_on_after(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory) -> None:
    queue = new_queue()
    gate = tmp_path / "gate"
    presets_dir = write_presets(tmp_path / "host-presets", presets(tmp_path, gate))
    async with running_server(tmp_path / "own-server") as server:  # this test stops it: a server of its own
        async with workers(tmp_path, presets_dir, server, queue, ("w1", "w2")):
            h = await remote_bot(harness, tmp_path, make_repo, server, queue, gate)
            task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
            await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
            server.stop()
            await eventually(lambda: said(h, task.id, "temporal_down"), timeout=60)
            # while it is away a new spawn waits too, and says why
            waiting = await h.engine.spawn("after the outage", requester="U1", preset="edit")
            await eventually(lambda: said(h, waiting.id, "temporal_down"), timeout=60)
            gate.touch()
            await server.restart()
            done = await h.settled(task.id, timeout=180)
            assert done.state == FINISHED, done.reason
            assert said(h, task.id, "temporal_back")
            later = await h.settled(waiting.id, timeout=180)
            assert later.state == FINISHED, later.reason
            assert said(h, task.id, "temporal_down") == said(h, task.id, "temporal_down")[:1]  # said once


async def test_discard_removes_the_work_everywhere(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory,
                                                   temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("add the feature", requester="U1", preset="edit")
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        remote = tmp_path / "remote.git"
        assert git(remote, "branch", "--list", done.branch or "")  # the host pushed it there
        discarded = await h.engine.discard(task.id, "U1")
        assert discarded.state == DISCARDED
        assert not git(h.repo, "branch", "--list", done.branch or "")
        assert not git(remote, "branch", "--list", done.branch or "")  # its transport branch is gone too
        worktrees = hosts[done.host or ""].data / "worktrees" / "demo"
        await eventually(lambda: not any(worktrees.glob(f"{task.id}*")), timeout=30)


async def test_placement_prefers_a_host_that_has_the_repo(harness: MakeHarness, tmp_path: Path,
                                                          make_repo: RepoFactory,
                                                          temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        first = await h.settled((await h.engine.spawn("one", requester="U1", preset="edit")).id, timeout=120)
        cloned = first.host
        for prompt in ("two", "three", "four"):
            later = await h.settled((await h.engine.spawn(prompt, requester="U1", preset="edit")).id, timeout=120)
            assert later.host == cloned, f"{prompt} went to {later.host}, not to {cloned} which has the clone"
        other = next(name for name in hosts if name != cloned)
        assert not (hosts[other].data / "clones" / "demo").exists()


async def test_a_follow_up_to_a_host_that_is_gone_is_said_and_moves(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        gate.touch()
        first = task = await first_run(h)
        hosts[first.host or ""].kill()
        await h.engine.followup(task.id, "second run", "U1")
        # the turn waits on the queue of a host nobody serves: after a while the thread says so
        await eventually(lambda: said(h, task.id, "host_lost"), timeout=60)
        await h.engine.retry_elsewhere(task.id, "U1")
        second = await h.settled(task.id, timeout=120)
        assert second.state == FINISHED, second.reason
        assert second.host != first.host
        # the other host started from the branch as pushed after the first turn: both runs are on it
        runs = git(h.repo, "show", f"{second.branch}:RUNS.md").splitlines()
        assert runs[0].endswith("first run") and runs[-1].endswith("second run")


async def test_a_task_after_a_local_merge_starts_from_the_merge(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    """Local delivery moves only the bot's main: the next task starts there all the same, although the
    remote the hosts clone from has never seen that commit."""
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        first = await h.settled((await h.engine.spawn("one", requester="U1", preset="edit")).id, timeout=120)
        merged = await h.engine.merge(first.id, "U1")
        assert merged.state == MERGED
        second = await h.settled((await h.engine.spawn("two", requester="U1", preset="followup")).id,
                                 timeout=120)
        assert second.state == FINISHED, second.reason
        assert second.base_commit == merged.merge_commit
        # the host worked on top of the merge: the first task's file is on the second task's branch
        assert git(h.repo, "show", f"{second.branch}:src/feature.py").startswith("# one")


async def test_update_from_base_reaches_the_worktree_on_its_host(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    """The bot merges the base into the branch (no worktree here) and pushes it; the host holding the
    worktree fast-forwards it at the next turn and the agent's session goes on there; a conflict is
    committed with its markers and sent to the agent."""
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        gate.touch()
        task = await first_run(h)
        # main moves on: a file of its own, and RUNS.md, which the task's branch also wrote
        commit_file(h.repo, "other.txt", "from main\n", "main gets other.txt")
        commit_file(h.repo, "RUNS.md", "main's own line\n", "main writes RUNS.md too")
        updated = await h.engine.update_from_base(task.id, "U1")
        assert updated.state == QUEUED  # the conflict in RUNS.md went to the agent as a follow-up
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        assert done.host == task.host and done.runs == 2
        # the host's own task ran a second time, in the worktree it had (fast-forwarded), not a copy
        assert (hosts[done.host or ""].data / "runs" / task.id / "2").is_dir()
        assert git(h.repo, "show", f"{done.branch}:other.txt") == "from main"
        runs = git(h.repo, "show", f"{done.branch}:RUNS.md")
        assert "<<<<<<<" in runs and "main's own line" in runs  # the markers the agent was told about
        assert "committed the merge with conflict markers" in runs  # the follow-up, as the agent recorded it


async def test_a_repo_without_a_remote_gets_a_clear_answer(harness: MakeHarness, tmp_path: Path,
                                                           temporal_server: TemporalServer) -> None:
    gate = tmp_path / "gate"
    clock = FakeClock()
    h = await harness(presets(tmp_path, gate), clock=clock, env={
        "SUPERSET_RUNNER": "temporal", "SUPERSET_TEMPORAL_ADDRESS": temporal_server.address,
        "SUPERSET_TEMPORAL_TASK_QUEUE": new_queue()})
    task = await h.engine.spawn("no remote here", requester="U1", preset="edit")
    failed = await h.settled(task.id, timeout=60)
    assert failed.state == "failed"
    assert "demo has no remote `origin`" in (failed.reason or "") and "SUPERSET_REMOTE" in (failed.reason or "")
    assert not git(h.repo, "branch", "--list", "superset/*")  # nothing left behind
    # a task that never reached a host is pruned in time as any other
    keeper = Housekeeper(h.engine)
    clock.advance(60 * 3600)
    await keeper.prune()
    clock.advance(30 * 3600)
    assert len((await keeper.prune()).pruned) == 1 and (await h.engine.get(task.id)).state == PRUNED


async def test_a_host_keeps_warm_worktrees_of_the_repos_it_cloned(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server, hosts=("w1",), SUPERSET_POOL_SIZE="1") as (h, hosts, gate):
        first = await h.settled((await h.engine.spawn("one", requester="U1", preset="edit")).id, timeout=120)
        assert not any("(warm" in text for text in said(h, first.id, "worktree_ready"))  # cloned just now
        admin = hosts["w1"].data / "clones" / "demo" / ".git" / "worktrees"
        await eventually(lambda: any((p / MARKER).exists() for p in admin.iterdir()), timeout=60,
                         what="a warm worktree ready on the host")  # the pool's mark, once ready
        second = await h.settled((await h.engine.spawn("two", requester="U1", preset="edit")).id, timeout=120)
        assert second.state == FINISHED, second.reason
        assert any("(warm" in text for text in said(h, second.id, "worktree_ready"))


async def test_the_log_comes_from_its_host_redacted_there(harness: MakeHarness, tmp_path: Path,
                                                          make_repo: RepoFactory,
                                                          temporal_server: TemporalServer) -> None:
    both = {**presets(tmp_path, tmp_path / "gate"), "secret": agent_preset("secret"), "chatty": chatty(8000)}
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server, hosts=("w1",), extra=both,
                            MY_API_TOKEN=SECRET) as (h, _, _):
        secret = await h.settled((await h.engine.spawn("say it", requester="U1", preset="secret")).id, timeout=120)
        _, log = await h.engine.log_of(secret.id)
        assert "the token is [redacted]" in log.text and SECRET not in log.text
        assert "hosts/w1" in log.where  # read on the host, where the log is
        long = await h.settled((await h.engine.spawn("talk", requester="U1", preset="chatty")).id, timeout=120)
        _, log = await h.engine.log_of(long.id)  # three pieces, each a standalone activity
        assert log.text.splitlines() == [f"line {i:06d} " + "y" * 69 for i in range(8000)]


async def test_a_move_leaves_a_turn_whose_host_answers_where_it_is(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server) as (h, hosts, gate):
        task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
        running = await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
        with pytest.raises(UserError, match="is answering; its turn stays there"):
            await h.engine.retry_elsewhere(task.id, "U1")  # an old button, a second click
        gate.touch()
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED and done.host == running.host and done.runs == 1


async def test_a_follow_up_its_host_refuses_fails_and_says_why(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server, hosts=("w1",)) as (h, hosts, gate):
        gate.touch()
        first = await first_run(h)
        # the host restarts needing more free disk than it has: it refuses the follow-up
        w1 = hosts["w1"]
        await w1.stop()
        w1.env["SUPERSET_MIN_FREE_DISK"] = "900T"
        await w1.start()
        await h.engine.followup(first.id, "second run", "U1")
        second = await h.settled(first.id, timeout=120)
        assert second.state == "failed", second.reason
        assert "host w1" in (second.reason or "") and "free" in (second.reason or "")
        assert git(h.repo, "show", f"{second.branch}:RUNS.md").strip().endswith("first run")  # nothing made up


async def test_a_stale_task_on_a_host_is_pruned_there(harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory,
                                                      temporal_server: TemporalServer) -> None:
    clock = FakeClock()
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server, hosts=("w1",), clock=clock) as (h, hosts, gate):
        task = await h.settled((await h.engine.spawn("one", requester="U1", preset="edit")).id, timeout=120)
        worktrees = hosts["w1"].data / "worktrees" / "demo"
        assert any(worktrees.glob(f"{task.id}*"))
        keeper = Housekeeper(h.engine)
        clock.advance(60 * 3600)
        assert len((await keeper.prune()).warned) == 1  # warned in its thread first, as a local one
        clock.advance(30 * 3600)
        assert len((await keeper.prune()).pruned) == 1
        assert (await h.engine.get(task.id)).state == PRUNED
        await eventually(lambda: not any(worktrees.glob(f"{task.id}*")), timeout=30, what="the host's worktree gone")


async def test_with_no_worker_host_the_thread_hears_it_waits_and_it_starts_when_one_comes(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    queue = new_queue()
    gate = tmp_path / "gate"
    presets_dir = write_presets(tmp_path / "host-presets", presets(tmp_path, gate))
    h = await remote_bot(harness, tmp_path, make_repo, temporal_server, queue, gate)
    task = await h.engine.spawn("nobody home", requester="U1", preset="edit")
    notice = await eventually(lambda: said(h, task.id, "no_host"), timeout=60, what="the no-host notice")
    assert f"queue `{queue}`" in notice[0]
    async with workers(tmp_path, presets_dir, temporal_server, queue, ("w1",)):
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED and done.host == "w1"


async def test_the_card_shows_a_stream_json_agent_as_a_local_run_does(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    """Claude Code's output is JSON events: the running card's tail is what they say, not the JSON."""
    slow = {"description": "claude stream, then a pause", "agent": {
        "command": ["sh", "-c", f"cat {CLAUDE_SAMPLE}; sleep 4"], "format": "claude-stream-json"}}
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server, hosts=("w1",),
                            extra={"slow": slow}) as (h, _, _):
        task = await h.engine.spawn("talk in json", requester="U1", preset="slow")
        done = await h.settled(task.id, timeout=120)
        assert done.state == FINISHED, done.reason
        running = [e.progress for e in h.of(task.id, ProgressChanged) if e.task.state == RUNNING and e.progress.tail]
        assert running, "the card had the agent's lines while it ran"
        assert not any(line.lstrip().startswith("{") for p in running for line in p.tail)
        assert any(line.startswith("{") for e in h.of(task.id, OutputLines) for line in e.lines)  # raw, as locally
        assert done.progress_snapshot().final_text  # the final message, read from the host as the turn ended


async def test_a_move_with_no_other_host_comes_back_to_the_same_one(
        harness: MakeHarness, tmp_path: Path, make_repo: RepoFactory, temporal_server: TemporalServer) -> None:
    """Retry on another host when there is none: the host, once back, takes the turn again after a while,
    with the agent that ran on meanwhile."""
    async with temporal_rig(harness, tmp_path, make_repo, temporal_server, hosts=("w1",)) as (h, hosts, gate):
        task = await h.engine.spawn("wait at the gate", requester="U1", preset="gated")
        await h.engine.wait_for(task.id, {RUNNING}, timeout=120)
        hosts["w1"].kill()
        await eventually(lambda: said(h, task.id, "host_lost"), timeout=60)
        await h.engine.retry_elsewhere(task.id, "U1")
        await hosts["w1"].start()
        gate.touch()
        done = await h.settled(task.id, timeout=180)
        assert done.state == FINISHED, done.reason
        assert git(h.repo, "show", f"{done.branch}:RUNS.md").strip().endswith("wait at the gate")
