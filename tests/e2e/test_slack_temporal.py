"""Slack end to end with the Temporal runner: the same slash command, thread and buttons as on one
machine, while the agents run on two `superset-bot worker` processes behind a real Temporal server;
and the thread's way out when a worker host is killed: Retry on another host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from support.engineharness import write_presets
from support.remotes import with_remote
from support.slackharness import CHANNEL, Bot, buttons, preset
from support.temporal import TemporalServer, new_queue, workers
from support.waiting import eventually

from superset_bot.store import FINISHED, MERGED, RUNNING

pytestmark = pytest.mark.timeout(240)


def temporal_env(server: TemporalServer, queue: str) -> dict[str, str]:
    return {"SUPERSET_RUNNER": "temporal", "SUPERSET_TEMPORAL_ADDRESS": server.address,
            "SUPERSET_TEMPORAL_TASK_QUEUE": queue, "SUPERSET_TEMPORAL_HEARTBEAT": "2s"}


async def test_slash_command_to_merge_through_worker_hosts(bot: Callable[..., Any], tmp_path: Path,
                                                           temporal_server: TemporalServer) -> None:
    queue = new_queue()
    presets = {"edit": preset("edit")}
    async with workers(tmp_path, write_presets(tmp_path / "host-presets", presets), temporal_server, queue,
                       ("w1", "w2")):
        b: Bot = await bot(presets, env=temporal_env(temporal_server, queue))
        with_remote(tmp_path, b.repo)
        status, _ = await b.command("spawn --repo demo add the feature")
        assert status == 200
        task = await b.task_for_thread()
        done = await b.finished(task.id)
        assert done.state == FINISHED, done.reason
        ids = b.thread_of(done)
        thread = b.fake.thread(CHANNEL, ids.thread_ts)
        said = json.dumps([m.blocks for m in thread])
        assert "worker hosts" in said and f"{done.branch}" in said  # dispatched; the host's worktree milestone
        review = b.fake.messages[(CHANNEL, ids.review_ts)]
        assert "src/feature.py" in json.dumps(review.blocks)
        status, _ = await b.click("task_merge", task.id, message_ts=ids.review_ts)
        assert status == 200
        merged = await b.finished(task.id, {MERGED})
        assert git(b.repo, "rev-parse", "main") == merged.merge_commit
        assert git(b.repo, "show", "main:src/feature.py").startswith("# add the feature")


async def test_a_killed_host_offers_retry_on_another_host(bot: Callable[..., Any], tmp_path: Path,
                                                          temporal_server: TemporalServer) -> None:
    queue = new_queue()
    gate = tmp_path / "gate"
    presets = {"gated": preset("gated", GATE_FILE=str(gate))}
    async with workers(tmp_path, write_presets(tmp_path / "host-presets", presets), temporal_server, queue,
                       ("w1", "w2")) as hosts:
        b: Bot = await bot(presets, env=temporal_env(temporal_server, queue))
        with_remote(tmp_path, b.repo)
        await b.command("spawn --repo demo wait at the gate")
        task = await b.task_for_thread()
        running = await b.engine.wait_for(task.id, {RUNNING}, timeout=120)
        gone = hosts[running.host or ""]
        gone.kill()
        ids = b.thread_of(running)

        def lost() -> Any:
            return next((m for m in b.fake.thread(CHANNEL, ids.thread_ts) if "task_move" in buttons(m)), None)

        notice = await eventually(lost, timeout=60, what="the host-lost notice")
        assert "stopped answering" in notice.text
        assert buttons(notice)["task_move"]["value"] == task.id and buttons(notice)["task_move"]["confirm"]
        gate.touch()
        status, _ = await b.click("task_move", task.id, message_ts=notice.ts)
        assert status == 200
        done = await b.finished(task.id)
        assert done.state == FINISHED, done.reason
        assert done.host != gone.name
        from superset_bot.agents.runner import AgentRun

        for pid_file in sorted((gone.data / "runs").glob("*/*/pid")):  # the dead host's agent, left behind
            await AgentRun.attach(pid_file.parent).cancel(0.5)
