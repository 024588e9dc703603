"""The engine's event bus: delivery in order, unsubscribing, a failing subscriber, waiting for a state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from superset_bot.domain.events import EngineEvent, StateChanged
from superset_bot.engine.bus import EventBus
from superset_bot.store import FINISHED, QUEUED, RUNNING, Task


def moved(state: str, task_id: str = "t1") -> StateChanged:
    return StateChanged(Task(id=task_id, repo="demo", prompt="p", preset="x", state=state), None, "U1")


class CountingBus(EventBus):
    """Counts the subscribers that have not unsubscribed yet."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribed = 0

    def subscribe(self, subscriber: Callable[[EngineEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(subscriber)
        self.subscribed += 1

        def counted() -> None:
            unsubscribe()
            self.subscribed -= 1

        return counted


def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first: list[EngineEvent] = []
    second: list[EngineEvent] = []
    bus.subscribe(first.append)
    bus.subscribe(second.append)
    events = [moved(QUEUED), moved(RUNNING)]
    for event in events:
        bus.publish(event)
    assert first == events and second == events


def test_an_unsubscribed_subscriber_gets_nothing_more() -> None:
    bus = EventBus()
    got: list[EngineEvent] = []
    unsubscribe = bus.subscribe(got.append)
    bus.publish(moved(QUEUED))
    unsubscribe()
    bus.publish(moved(RUNNING))
    assert [e.task.state for e in got] == [QUEUED]


def test_a_subscriber_may_unsubscribe_while_an_event_is_delivered() -> None:
    bus = EventBus()
    got: list[str] = []
    unsubscribe = bus.subscribe(lambda event: (got.append("once"), unsubscribe()))
    bus.subscribe(lambda event: got.append("always"))
    bus.publish(moved(QUEUED))
    bus.publish(moved(RUNNING))
    assert got == ["once", "always", "always"]


def test_a_failing_subscriber_is_logged_and_the_others_still_get_the_event(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    got: list[EngineEvent] = []

    def broken(event: EngineEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    with caplog.at_level(logging.ERROR, logger="superset_bot.engine.bus"):
        bus.publish(moved(QUEUED))
    assert len(got) == 1
    assert any("task t1" in r.getMessage() and "StateChanged" in r.getMessage() for r in caplog.records)


async def test_wait_for_answers_at_once_when_the_task_is_already_there() -> None:
    bus = CountingBus()
    done = moved(FINISHED).task

    async def current(task_id: str) -> Task | None:
        return done

    assert await bus.wait_for("t1", {FINISHED}, 1.0, current) is done
    assert bus.subscribed == 0


async def test_wait_for_follows_events_of_that_task_only_then_unsubscribes() -> None:
    bus = CountingBus()
    seen: list[EngineEvent] = []
    bus.subscribe(seen.append)

    async def current(task_id: str) -> Task | None:
        return None

    waiting = asyncio.create_task(bus.wait_for("t1", {FINISHED}, 5.0, current))
    await asyncio.sleep(0)
    bus.publish(moved(FINISHED, task_id="other"))
    bus.publish(moved(RUNNING))
    assert not waiting.done()
    bus.publish(moved(FINISHED))
    assert (await waiting).state == FINISHED
    assert bus.subscribed == 1  # only `seen` is left
    assert len(seen) == 3


async def test_wait_for_times_out_and_unsubscribes() -> None:
    bus = CountingBus()

    async def current(task_id: str) -> Task | None:
        return None

    with pytest.raises(TimeoutError):
        await bus.wait_for("t1", {FINISHED}, 0.05, current)
    assert bus.subscribed == 0
