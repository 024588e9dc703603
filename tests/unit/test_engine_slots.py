"""The engine's concurrency slots: a limit, a FIFO queue behind it, and what a cancel or a kick does."""

from __future__ import annotations

import asyncio

import pytest

from superset_bot.engine.slots import Slots


def slots(limit: int) -> tuple[Slots, list[list[str]]]:
    changes: list[list[str]] = []
    return Slots(limit, changes.append), changes


async def waiting(s: Slots, task_id: str) -> asyncio.Task[None]:
    job = asyncio.create_task(s.acquire(task_id))
    while s.position(task_id) is None and not job.done():
        await asyncio.sleep(0)
    return job


async def test_slots_are_granted_up_to_the_limit_then_in_arrival_order() -> None:
    s, changes = slots(2)
    await s.acquire("a")
    await s.acquire("b")
    c, d = await waiting(s, "c"), await waiting(s, "d")
    assert s.holders == {"a", "b"} and (s.position("c"), s.position("d")) == (1, 2)
    assert changes == [["c"], ["c", "d"]]
    s.release("a")
    await c
    assert s.holders == {"b", "c"} and s.position("d") == 1 and not d.done()
    assert changes[-1] == ["d"]
    s.release("b")
    await d
    assert s.holders == {"c", "d"} and s.position("d") is None


async def test_acquiring_a_held_slot_again_does_not_take_a_second_one() -> None:
    s, changes = slots(1)
    await s.acquire("a")
    await s.acquire("a")
    assert s.holders == {"a"} and changes == []


async def test_a_newcomer_queues_behind_waiters_even_when_a_slot_looks_free() -> None:
    s, _ = slots(1)
    s.take("running")  # an agent found running after a restart holds a slot without queueing
    first = await waiting(s, "first")
    s.limit = 2  # room for one more, but "first" came earlier
    later = await waiting(s, "later")
    assert s.position("first") == 1 and s.position("later") == 2
    s.kick()  # hands the free slot to whoever waits longest
    await first
    assert s.holders == {"running", "first"} and s.position("later") == 1
    later.cancel()
    with pytest.raises(asyncio.CancelledError):
        await later


async def test_a_cancelled_waiter_leaves_the_queue_and_says_so() -> None:
    s, changes = slots(1)
    await s.acquire("a")
    b, c = await waiting(s, "b"), await waiting(s, "c")
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    assert s.position("b") is None and s.position("c") == 1
    assert changes[-1] == ["c"]
    s.release("a")
    await c
    assert s.holders == {"c"}


async def test_a_waiter_granted_its_slot_while_being_cancelled_passes_it_on() -> None:
    s, _ = slots(1)
    await s.acquire("a")
    b, c = await waiting(s, "b"), await waiting(s, "c")
    s.release("a")  # grants "b", whose task has not run since
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    await c
    assert s.holders == {"c"}


async def test_releasing_a_slot_nobody_waits_for_changes_no_queue() -> None:
    s, changes = slots(1)
    await s.acquire("a")
    s.release("a")
    s.kick()
    assert s.holders == set() and changes == []
