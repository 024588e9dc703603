"""Hooks: concurrent plugins with per-plugin timeouts and isolation, entry points (a preset's checks are
the engine's step: tests/integration/test_engine_checks.py)."""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from superset_bot.plugins.hooks import LIFECYCLE_EVENTS, HookEvent, Hooks


def event(name: str = "agent_finished", **kw: object) -> HookEvent:
    return HookEvent(name=name, task_id=str(kw.pop("task_id", "t-42")), repo="demo", **kw)  # type: ignore[arg-type]


def test_lifecycle_events_are_the_documented_ones() -> None:
    assert LIFECYCLE_EVENTS == (
        "task_created", "worktree_ready", "setup_done", "agent_started", "agent_finished",
        "review_ready", "merged", "discarded", "pruned",
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown lifecycle event 'finished'"):
        event("finished")


def test_event_mappings_are_read_only() -> None:
    ev = event(env={"A": "1"}, data={"exit_code": 0})
    with pytest.raises(TypeError):
        ev.env["B"] = "2"  # type: ignore[index]
    assert ev.data["exit_code"] == 0


async def test_plugins_run_concurrently() -> None:
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def first(ev: HookEvent) -> str:
        first_started.set()
        await second_started.wait()  # only returns if the other plugin runs at the same time
        return "first"

    async def second(ev: HookEvent) -> str:
        second_started.set()
        await first_started.wait()
        return "second"

    hooks = Hooks(default_timeout=10)
    hooks.register(first)
    hooks.register(second)
    outcomes = await hooks.dispatch(event())
    assert [(o.plugin, o.ok, o.result) for o in outcomes] == [
        ("first", True, "first"),
        ("second", True, "second"),
    ]


async def test_a_hanging_plugin_is_cut_at_its_timeout_while_a_fast_one_succeeds() -> None:
    cancelled = asyncio.Event()

    async def sleepy(ev: HookEvent) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def quick(ev: HookEvent) -> str:
        return "done"

    hooks = Hooks(default_timeout=10)
    hooks.register(sleepy, timeout=0.2)
    hooks.register(quick)
    slow, fast = await hooks.dispatch(event())
    assert slow.plugin == "sleepy" and slow.timed_out and not slow.ok
    assert slow.error == "timed out after 0.2s"
    assert fast.ok and not fast.timed_out and fast.result == "done"
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_plugin_ignoring_cancellation_does_not_stall_dispatch() -> None:
    release = asyncio.Event()
    finished = asyncio.Event()

    async def stubborn(ev: HookEvent) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # refuses to stop
        finished.set()

    hooks = Hooks(default_timeout=0.2)
    hooks.register(stubborn)
    [outcome] = await hooks.dispatch(event())
    assert outcome.timed_out and not finished.is_set()  # dispatch returned; the plugin still runs
    release.set()
    await asyncio.wait_for(finished.wait(), 5)


async def test_a_raising_plugin_is_reported_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(ev: HookEvent) -> None:
        raise RuntimeError("boom")

    async def fine(ev: HookEvent) -> int:
        return 7

    hooks = Hooks()
    hooks.register(broken, name="broken-plugin")
    hooks.register(fine)
    with caplog.at_level(logging.WARNING, logger="superset_bot.plugins.hooks"):
        bad, good = await hooks.dispatch(event(task_id="task-77"))
    assert not bad.ok and not bad.timed_out and bad.error == "RuntimeError: boom"
    assert good.ok and good.result == 7
    assert any("broken-plugin" in r.getMessage() and "task-77" in r.getMessage() for r in caplog.records)


async def test_plugins_only_see_the_events_they_asked_for() -> None:
    seen: list[str] = []

    async def on_merge(ev: HookEvent) -> None:
        seen.append(ev.name)

    hooks = Hooks()
    hooks.register(on_merge, events=["merged", "discarded"])
    assert await hooks.dispatch(event("agent_finished")) == []
    [outcome] = await hooks.dispatch(event("merged", worktree=Path("/tmp/wt")))
    assert outcome.ok and outcome.event == "merged" and seen == ["merged"]


def test_registering_with_an_unknown_event_or_twice_is_an_error() -> None:
    async def plugin(ev: HookEvent) -> None:
        return None

    hooks = Hooks()
    with pytest.raises(ValueError, match="unknown event"):
        hooks.register(plugin, events=["agent_done"])
    hooks.register(plugin)
    with pytest.raises(ValueError, match="already registered"):
        hooks.register(plugin)
    with pytest.raises(ValueError, match="positive"):
        hooks.register(plugin, name="other", timeout=0)


async def test_a_plain_function_plugin_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()

    def blocking(ev: HookEvent) -> bool:
        return threading.get_ident() != loop_thread

    hooks = Hooks()
    hooks.register(blocking)
    [outcome] = await hooks.dispatch(event())
    assert outcome.ok and outcome.result is True


async def test_timeout_may_depend_on_the_event() -> None:
    async def slow(ev: HookEvent) -> None:
        await asyncio.sleep(60)

    hooks = Hooks(default_timeout=30)
    hooks.register(slow, timeout=lambda ev: float(ev.data["budget"]))
    [outcome] = await hooks.dispatch(event(data={"budget": 0.1}))
    assert outcome.timed_out and outcome.error == "timed out after 0.1s"


# --------------------------------------------------------------------------- entry points


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real installed distribution (a dist-info on sys.path) advertising superset_bot.plugins."""
    package = tmp_path / "hookplug_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            CALLS = []

            async def on_event(event):
                CALLS.append(("simple", event.name))
                return "simple"

            class Fancy:
                events = ("merged",)
                timeout = 1.5

                async def __call__(self, event):
                    CALLS.append(("fancy", event.name))
                    return "fancy"

            def make_plugin():
                return Fancy()

            NOT_A_PLUGIN = "just a string"
            """
        )
    )
    dist = tmp_path / "hookplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hookplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[superset_bot.plugins]\n"
        "simple = hookplug_pkg:on_event\n"
        "fancy = hookplug_pkg:Fancy\n"
        "factory = hookplug_pkg:make_plugin\n"
        "missing = hookplug_missing_module:thing\n"
        "wrong = hookplug_pkg:NOT_A_PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("hookplug_pkg", None)


async def test_entry_point_plugins_load_and_broken_ones_are_skipped(
    plugin_dist: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = Hooks()
    with caplog.at_level(logging.ERROR, logger="superset_bot.plugins.hooks"):
        loaded = hooks.load_entry_points()
    assert sorted(loaded) == ["factory", "fancy", "simple"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "'missing'" in logged and "'wrong'" in logged

    import hookplug_pkg  # type: ignore[import-not-found]

    outcomes = await hooks.dispatch(event("agent_finished"))
    assert [o.plugin for o in outcomes] == ["simple"]
    outcomes = await hooks.dispatch(event("merged"))
    assert sorted(o.result for o in outcomes) == ["fancy", "fancy", "simple"]
    assert ("fancy", "merged") in hookplug_pkg.CALLS and ("fancy", "agent_finished") not in hookplug_pkg.CALLS
