"""The bubblewrap sandbox (`"sandbox": "bwrap"`): a sandboxed agent does its real work (edit, commit in
its worktree) and nothing else: the main checkout, another task's worktree and branch, the bot's
database, ~/.ssh, a path outside everything and, with the network off, a socket are all refused.
Real bwrap, real git, real agents."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from support.bwrap import BWRAP, needs_bwrap
from support.engineharness import MakeHarness, agent_preset

from superset_bot.agents.sandbox import SandboxPlan, bwrap_argv
from superset_bot.presets import PresetError
from superset_bot.presets.schema import parse_preset
from superset_bot.store import FINISHED

MINIMAL = {"agent": {"command": ["true"]}}


def escape_preset(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    env = {"OTHER_WORKTREE": str(tmp_path / "data" / "worktrees" / "demo" / "other1"),
           "OTHER_BRANCH": "refs/heads/superset/other1/another-task",
           "BOT_DB": str(tmp_path / "data" / "superset.sqlite3"), "OUTSIDE_FILE": str(tmp_path / "outside.txt"),
           **extra.pop("env", {})}
    checks = ['echo checks > "$SUPERSET_ROOT_PATH/checks-escaped.txt" || echo "checks refused"']
    return agent_preset("escape", sandbox="bwrap", env=env, checks=checks, **extra)


def lines_of(h: Any, task_id: str) -> list[str]:
    from superset_bot.domain.events import OutputLines
    return [line for e in h.of(task_id, OutputLines) for line in e.lines]


@needs_bwrap
async def test_a_sandboxed_agent_commits_its_work_and_reaches_nothing_else(
        harness: MakeHarness, tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"  # the bot's HOME is tmp_path
    ssh.mkdir()
    (ssh / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (ssh / "authorized_keys").write_text("")
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        h = await harness({"edit": agent_preset("edit"),
                           "escape": escape_preset(tmp_path, sandbox_network=False,
                                                   env={"LISTENER_PORT": str(port)})},
                          env={"SUPERSET_BWRAP": str(BWRAP)})
        other = await h.engine.spawn("another task", requester="U1", preset="edit", task_id="other1")
        other = await h.settled(other.id, {FINISHED})
        other_tip = git(h.repo, "rev-parse", other.branch or "")
        main_tip = git(h.repo, "rev-parse", "main")
        db_before = h.settings.db_path.stat().st_size

        task = await h.engine.spawn("try everything", requester="U1", preset="escape")
        done = await h.settled(task.id, {FINISHED})
    finally:
        listener.close()
        await listener.wait_closed()
    said = lines_of(h, task.id)
    assert not [line for line in said if line.startswith("ESCAPED")], said
    for what in ("checkout", "other worktree", "database", "ssh", "outside", "ssh key", "network",
                 "move refs/heads/main", f"move refs/heads/{other.branch}", "repoint HEAD", ".git"):
        assert any(line.startswith(f"refused: {what}") for line in said), (what, said)
    assert not (h.repo / "escaped.txt").exists() and not (Path(other.worktree or "") / "escaped.txt").exists()
    assert not (tmp_path / "outside.txt").exists() and (ssh / "authorized_keys").read_text() == ""
    assert git(h.repo, "rev-parse", "main") == main_tip and git(h.repo, "rev-parse", other.branch or "") == other_tip
    assert b"escaped" not in h.settings.db_path.read_bytes() and db_before > 0
    assert git(Path(done.worktree or ""), "symbolic-ref", "HEAD") == f"refs/heads/{done.branch}"
    # the checks run what the agent wrote: in its sandbox too
    assert not (h.repo / "checks-escaped.txt").exists()
    assert ((done.review_data() or {}).get("checks") or {}).get("passed") is True
    # its own work: committed on its branch, in its worktree; its /tmp was its own
    assert git(h.repo, "log", "-1", "--format=%s", done.branch or "") == "agent: its own work, in the sandbox"
    assert (Path(done.run_dir or "") / "tmp" / "scratch.txt").read_text() == "private tmp\n", "its own TMPDIR"
    denials = (done.review_data() or {}).get("denials") or []
    assert any("refused by the sandbox" in d and "Read-only file system" in d for d in denials), denials
    started = [m.text for m in h.events if getattr(m, "kind", "") == "agent_started" and m.task.id == task.id]
    assert started and "in its sandbox" in started[0]
    merged = await h.engine.merge(task.id, "U1")
    assert (h.repo / "src" / "feature.py").read_text() == "VALUE = 1\n", merged


@needs_bwrap
async def test_with_the_network_on_the_sandboxed_agent_reaches_loopback(
        harness: MakeHarness, tmp_path: Path) -> None:
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        h = await harness({"escape": escape_preset(tmp_path, env={"LISTENER_PORT": str(port)})},
                          env={"SUPERSET_BWRAP": str(BWRAP)})
        task = await h.engine.spawn("try the network", requester="U1")
        await h.settled(task.id, {FINISHED})
    finally:
        listener.close()
        await listener.wait_closed()
    assert "ESCAPED: network" in lines_of(h, task.id), "network on (the default) lets it reach its model API"


@needs_bwrap
async def test_a_sandboxed_agent_past_its_memory_limit_is_stopped_for_memory(
        harness: MakeHarness, tmp_path: Path) -> None:
    h = await harness({"hungry": agent_preset("memory", sandbox="bwrap", limits={"memory": "100M"})},
                      env={"SUPERSET_BWRAP": str(BWRAP)})
    task = await h.engine.spawn("eat memory", requester="U1")
    done = await h.settled(task.id)
    assert "memory" in (done.reason or ""), done.reason


def test_the_mounts_hide_first_then_let_back_in_then_seal() -> None:
    plan = SandboxPlan(worktree=Path("/data/worktrees/web/t1"), git_dir=Path("/repos/web/.git/worktrees/t1"),
                       common_dir=Path("/repos/web/.git"), checkout=Path("/repos/web"),
                       ref_dirs=(Path("/repos/web/.git/refs/heads/superset/t1"),),
                       hide_dirs=(Path("/data"), Path("/home/u/.ssh")), hide_files=(Path("/home/u/.netrc"),),
                       writable=(Path("/home/u/.npm"),), network=False)
    argv = bwrap_argv("bwrap", plan, ["agent", "--x"])
    text = " ".join(argv)
    assert argv[-3:] == ["--", "agent", "--x"] and "--unshare-net" in argv and "--die-with-parent" in argv
    order = [text.index(part) for part in (
        "--ro-bind / /", "--tmpfs /data", "--tmpfs /repos/web", "--ro-bind /dev/null /home/u/.netrc",
        "--ro-bind /repos/web/.git /repos/web/.git", "--bind /data/worktrees/web/t1 /data/worktrees/web/t1",
        "--bind /repos/web/.git/objects", "--remount-ro /data")]
    assert order == sorted(order), text
    assert "--unshare-net" not in bwrap_argv("bwrap", SandboxPlan(**{**plan.__dict__, "network": True}), ["a"])
    # a HOME on /dev/shm is bound back over the sandbox's fresh /dev, before anything is hidden in it
    kept = " ".join(bwrap_argv("bwrap", SandboxPlan(**{**plan.__dict__, "keep": (Path("/dev/shm/home"),)}), ["a"]))
    assert kept.index("--dev /dev") < kept.index("--ro-bind /dev/shm/home /dev/shm/home") < kept.index("--tmpfs /data")


def test_preset_sandbox_fields() -> None:
    preset = parse_preset("p", {**MINIMAL, "sandbox": "bwrap", "sandbox_network": False,
                                "sandbox_writable": ["~/.npm", "/var/cache/x"], "sandbox_hidden": ["~/.config/gh"]})
    assert (preset.sandbox, preset.sandbox_network, preset.sandbox_writable) == ("bwrap", False,
                                                                                ("~/.npm", "/var/cache/x"))
    assert parse_preset("p", MINIMAL).sandbox == "none"
    with pytest.raises(PresetError, match='field "sandbox": expected one of none, bwrap, got "docker"'):
        parse_preset("p", {**MINIMAL, "sandbox": "docker"})
    with pytest.raises(PresetError, match=r'field "sandbox_writable\[0\]": "cache" should be absolute'):
        parse_preset("p", {**MINIMAL, "sandbox_writable": ["cache"]})


async def test_a_sandboxed_preset_without_bwrap_is_refused_at_spawn_with_the_fix(
        harness: MakeHarness, tmp_path: Path) -> None:
    h = await harness({"escape": escape_preset(tmp_path)}, env={"SUPERSET_BWRAP": str(tmp_path / "no-bwrap")})
    with pytest.raises(Exception, match="runs its agent in a bubblewrap sandbox, but .* is not installed"):
        await h.engine.spawn("try", requester="U1")
    assert await h.store.list_tasks() == []


@needs_bwrap
async def test_a_restarted_bot_follows_a_sandboxed_agent_and_cancel_ends_all_of_it(
        harness: MakeHarness, tmp_path: Path) -> None:
    from superset_bot.domain.events import EngineEvent, ProgressChanged
    from superset_bot.engine.core import Engine
    from superset_bot.plugins.hooks import builtin_hooks
    from superset_bot.procs import group_alive

    h = await harness({"sleep": agent_preset("sleep", sandbox="bwrap")}, env={"SUPERSET_BWRAP": str(BWRAP)})
    task = await h.engine.spawn("long job", requester="U1")
    running = await h.engine.wait_for(task.id, {"running"})
    while not lines_of(h, task.id)[1:]:
        await asyncio.sleep(0.05)
    await h.engine.stop()  # the bot goes away; the sandboxed agent keeps running
    engine2 = Engine(h.settings, h.store, h.engine.presets, builtin_hooks())
    seen: list[EngineEvent] = []
    engine2.subscribe(seen.append)
    await engine2.start()
    try:
        assert engine2.is_driven(task.id), "the sandboxed agent is followed again"
        while not any(isinstance(e, ProgressChanged) and e.task.id == task.id for e in seen):
            await asyncio.sleep(0.05)
        cancelled = await engine2.cancel(task.id, "U1")
        assert cancelled.state == "cancelled"
    finally:
        await engine2.stop()
    assert running.pid is not None
    for _ in range(100):  # bwrap, the agent and anything it started are gone
        if not group_alive(running.pid):
            break
        await asyncio.sleep(0.05)
    assert not group_alive(running.pid)
