"""The task store: real SQLite files, migrations, atomic transitions, append-only audit log."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from superset_bot.frontends.slack.messages import SlackIds, SlackMessages
from superset_bot.store import (
    _MIGRATIONS,
    FINISHED,
    MERGED,
    MERGING,
    QUEUED,
    RUNNING,
    Store,
    StoreError,
    Task,
    new_task_id,
)


async def test_create_get_update_and_events(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        task = await store.create_task(Task(id=new_task_id(), repo="demo", prompt="fix it", preset="demo"), "U1")
        assert task.state == QUEUED and task.created_at > 0
        task = await store.update_task(task.id, branch="superset/x-fix-it", log_pos=42)
        again = await store.get_task(task.id)
        assert again == task and again.log_pos == 42
        moved = await store.transition(task.id, RUNNING, "engine", detail={"pid": 5}, pid=5)
        assert moved is not None and moved.state == RUNNING and moved.pid == 5
        actions = [(e.actor, e.action, e.detail.get("from")) for e in await store.events(task.id)]
        assert actions == [("U1", "created", None), ("engine", RUNNING, QUEUED)]
        with pytest.raises(StoreError):
            await store.update_task(task.id, state=FINISHED)
        with pytest.raises(StoreError):
            await store.update_task(task.id, colour="blue")
    finally:
        await store.close()


async def test_transition_is_compare_and_swap(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        task = await store.create_task(Task(id="abc234", repo="demo", prompt="p", preset="demo", state=FINISHED), "U1")
        claims = await asyncio.gather(
            *(store.transition(task.id, MERGING, f"U{i}", expect={FINISHED}) for i in range(10))
        )
        assert sum(c is not None for c in claims) == 1
        assert await store.transition(task.id, MERGED, "U1", expect={MERGING}) is not None
        assert await store.transition(task.id, MERGING, "U2", expect={FINISHED}) is None
    finally:
        await store.close()


async def test_survives_reopen_and_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    await store.create_task(Task(id="abc234", repo="demo", prompt="p", preset="demo"), "U1")
    await store.set_meta("last_digest", "123")
    await store.close()
    store = await Store.open(path)
    try:
        assert (await store.get_task("abc234")) is not None
        assert await store.get_meta("last_digest") == "123"
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)


async def test_audit_log_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    await store.add_event(None, "U1", "prune", {"dry_run": True})
    await store.close()
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events")


async def test_tasks_in_flight_keep_their_slack_threads_across_the_upgrade(tmp_path: Path) -> None:
    """Schema 4 moves Slack's message ids from the tasks table into slack_messages, then drops the columns."""
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:  # the database a bot of schema 3 left behind
        for script in _MIGRATIONS[:3]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 3")
        columns = "id, repo, prompt, preset, state, channel, thread_ts, status_ts, review_ts, created_at, updated_at, " \
                  "last_activity"
        rows = [("slack1", "C1", "1.1", "1.2", "1.3"), ("queued", "C1", "2.1", None, None),
                ("console", None, None, None, None), ("unposted", "C2", None, None, None)]
        for n, (task_id, channel, thread_ts, status_ts, review_ts) in enumerate(rows):
            db.execute(f"INSERT INTO tasks ({columns}) VALUES (?, 'demo', 'p', 'demo', 'running', ?, ?, ?, ?, ?, ?, ?)",
                       (task_id, channel, thread_ts, status_ts, review_ts, n, n, n))
    store = await Store.open(path)
    try:
        task = await store.get_task("slack1")
        assert task is not None and task.channel == "C1" and task.state == RUNNING
        messages = SlackMessages(store)
        await messages.load()
        assert messages.get("slack1") == SlackIds("C1", "1.1", "1.2", "1.3")
        assert messages.get("queued") == SlackIds("C1", "2.1")
        assert messages.get("console") is None and messages.get("unposted") is None
        assert messages.task_in_thread("C1", "1.1") == "slack1" and messages.task_in_thread("C1", "1.2") is None
        assert [t.id for t in await store.list_tasks(channel="C1")] == ["slack1", "queued"]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
        left = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
        assert "channel" in left and not left & {"thread_ts", "status_ts", "review_ts"}


async def test_slack_messages_are_saved_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    try:
        messages = SlackMessages(store)
        await messages.open_thread("abc234", "C1", "5.1")  # the root is posted before the task exists
        await messages.open_thread("gone22", "C1", "6.1")
        await messages.set_status("abc234", "5.2")
        await messages.set_review("abc234", "5.3")
        await messages.set_review("abc234", "5.4")
        await messages.forget("gone22")
        assert messages.get("abc234") == SlackIds("C1", "5.1", "5.2", "5.4")
        assert messages.get("gone22") is None and messages.task_in_thread("C1", "6.1") is None
        with pytest.raises(KeyError):
            await messages.set_status("nothere", "7.1")
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        again = SlackMessages(store)
        await again.load()
        assert again.get("abc234") == SlackIds("C1", "5.1", "5.2", "5.4") and again.get("gone22") is None
        assert again.task_in_thread("C1", "5.1") == "abc234"
        # a race's attempt: its card is a reply in the race's thread, and carries its reaction
        attempt = await again.open_thread("att111", "C1", "8.1", card_ts="8.2")
        assert attempt.card == "8.2" and again.task_in_thread("C1", "8.1") is None
        await again.reaction_set("C1", "8.2", "runner")
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        third = SlackMessages(store)
        await third.load()
        assert third.get("att111") == SlackIds("C1", "8.1", reaction="runner", card_ts="8.2")
        assert third.reactions()[("C1", "8.2")] == "runner"
    finally:
        await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer superset-bot"):
        await Store.open(path)


async def test_list_filters(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        for i, state in enumerate([QUEUED, RUNNING, FINISHED]):
            await store.create_task(
                Task(id=f"t{i}aaaa", repo="demo", prompt="p", preset="demo", state=state, requester=f"U{i % 2}"), "U"
            )
        assert [t.id for t in await store.list_tasks({RUNNING, QUEUED})] == ["t0aaaa", "t1aaaa"]
        assert [t.id for t in await store.list_tasks(requester="U0")] == ["t0aaaa", "t2aaaa"]
        assert [t.id for t in await store.list_tasks(newest_first=True, limit=1)] == ["t2aaaa"]
    finally:
        await store.close()


@pytest.mark.parametrize("write", ["update", "transition", "event"])
async def test_a_write_cancelled_at_any_step_leaves_the_store_usable(tmp_path: Path, write: str) -> None:
    # The engine cancels a task's driver wherever it is, often inside a write. aiosqlite runs each
    # statement in its own thread, so a cancelled BEGIN or COMMIT still happens there; the store must
    # still end that transaction, or every later write fails ("cannot start a transaction within
    # a transaction") and the whole bot is wedged. Cancel after 0, 1, 2, ... loop steps, so every
    # await of the write is hit, and write again each time.
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        await store.create_task(Task(id="race1", repo="demo", prompt="p", preset="x", requester="U1",
                                     state=FINISHED), "U1")
        for steps in range(40):
            if write == "update":
                job = asyncio.ensure_future(store.update_task("race1", reason=f"cancelled at {steps}"))
            elif write == "transition":
                job = asyncio.ensure_future(store.transition("race1", MERGING, "U1", expect={FINISHED},
                                                             reason=f"at {steps}"))
            else:
                job = asyncio.ensure_future(store.add_event("race1", "U1", "note", {"steps": steps}))
            for _ in range(steps):
                await asyncio.sleep(0)
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
            after = await store.update_task("race1", reason=f"written after {steps}")
            assert after.reason == f"written after {steps}"
            if (await store.get_task("race1")).state == MERGING:  # the claim was written before the cancel came
                assert (await store.transition("race1", FINISHED, "U1", expect={MERGING})) is not None
            assert (await store.transition("race1", MERGING, "U1", expect={FINISHED})) is not None
            assert (await store.transition("race1", FINISHED, "U1", expect={MERGING})) is not None
        # and what was written is on disk, not in a transaction left open
        other = sqlite3.connect(tmp_path / "db.sqlite3")
        try:
            assert other.execute("SELECT reason FROM tasks WHERE id = 'race1'").fetchone()[0] == "written after 39"
        finally:
            other.close()
    finally:
        await store.close()
