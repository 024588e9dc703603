"""The engine's asyncio tasks: one driver per task, found while it runs, gone when it ends; and stopping them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from superset_bot.engine.workers import Workers


async def test_a_driver_is_the_tasks_until_it_ends() -> None:
    workers = Workers()
    release = asyncio.Event()
    workers.drive("t1", _wait(release))
    driver = workers.driver_of("t1")
    assert driver is not None and driver.get_name() == "task-t1"
    assert workers.is_driven("t1") and not workers.is_driven("t2") and workers.driver_of("t2") is None
    release.set()
    await driver
    assert not workers.is_driven("t1") and workers.driver_of("t1") is None


async def test_a_new_driver_of_the_same_task_is_not_dropped_when_the_old_one_ends() -> None:
    workers = Workers()
    first, second = asyncio.Event(), asyncio.Event()
    workers.drive("t1", _wait(first))
    old = workers.driver_of("t1")
    workers.drive("t1", _wait(second))  # a requeue drives the task again while the old driver winds down
    new = workers.driver_of("t1")
    assert old is not None and new is not None and new is not old
    first.set()
    await old
    assert workers.driver_of("t1") is new
    second.set()
    await new
    assert not workers.is_driven("t1")


async def test_wait_idle_waits_for_drivers_started_meanwhile() -> None:
    workers = Workers()
    ended: list[str] = []

    async def then_another() -> None:
        await asyncio.sleep(0.01)
        ended.append("first")
        workers.drive("t2", _note(ended, "second"))

    workers.drive("t1", then_another())
    await asyncio.wait_for(workers.wait_idle(), 5)
    assert ended == ["first", "second"]


async def test_wait_idle_does_not_raise_when_a_driver_failed() -> None:
    workers = Workers()

    async def broken() -> None:
        raise RuntimeError("boom")

    workers.drive("t1", broken())
    await asyncio.wait_for(workers.wait_idle(), 5)
    assert not workers.is_driven("t1")


async def test_background_jobs_run_on_their_own() -> None:
    workers = Workers()
    ended: list[str] = []
    workers.background(_note(ended, "job"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert ended == ["job"]


async def test_stop_cancels_drivers_and_jobs_and_names_one_that_would_not_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    workers = Workers()
    forever = asyncio.Event()
    cancelled: list[str] = []

    async def stoppable(name: str) -> None:
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def stubborn() -> None:
        while not forever.is_set():
            try:
                await forever.wait()
            except asyncio.CancelledError:
                cancelled.append("stubborn")

    workers.drive("t1", stoppable("driver"))
    workers.drive("t2", stubborn())
    workers.background(stoppable("job"))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="superset_bot.engine.workers"):
        await workers.stop(timeout=0.1)
    assert sorted(cancelled) == ["driver", "job", "stubborn"]
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["task-t2"]
    forever.set()
    await asyncio.wait_for(workers.wait_idle(), 5)


async def test_stop_with_nothing_running_returns_at_once() -> None:
    await asyncio.wait_for(Workers().stop(), 1)


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


async def _note(ended: list[str], name: str) -> None:
    ended.append(name)
