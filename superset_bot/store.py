"""Tasks and their audit log in SQLite, the bot's memory across restarts.

One long-lived connection does all writes; each transaction holds an asyncio lock and runs
`BEGIN IMMEDIATE ... COMMIT`, so state changes are atomic and compare-and-swap transitions
(`transition(..., expect=...)`) make a double click or a retried request act once.
The connection must be closed on shutdown: aiosqlite's worker thread would keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import aiosqlite

from superset_bot.aio import run_to_end

# Task states (DESIGN.md). `merging`/`discarding` are short claims that make a button act once.
QUEUED, PREPARING, RUNNING = "queued", "preparing", "running"
FINISHED, FAILED, CANCELLED, TIMED_OUT = "finished", "failed", "cancelled", "timed_out"
MERGING, MERGED, DISCARDING, DISCARDED, PRUNED = "merging", "merged", "discarding", "discarded", "pruned"
ACTIVE_STATES = frozenset({QUEUED, PREPARING, RUNNING})
REVIEWABLE_STATES = frozenset({FINISHED, FAILED, CANCELLED, TIMED_OUT})
CLOSED_STATES = frozenset({MERGED, DISCARDED, PRUNED})
ALL_STATES = ACTIVE_STATES | REVIEWABLE_STATES | CLOSED_STATES | {MERGING, DISCARDING}

BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's lock before giving up
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/1/i/l/o: easy to read aloud and type


def new_task_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


@dataclass(frozen=True)
class Task:
    id: str
    repo: str
    prompt: str
    preset: str
    state: str = QUEUED
    requester: str = ""
    branch: str | None = None
    base_branch: str | None = None
    base_commit: str | None = None
    worktree: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    status_ts: str | None = None  # the status card in the thread
    review_ts: str | None = None  # the latest review message (its buttons are removed once closed)
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    run_dir: str | None = None
    log_pos: int = 0
    runs: int = 0
    session_id: str | None = None
    pending_prompt: str | None = None  # a follow-up waiting for a slot (survives restarts)
    closed_by: str | None = None
    merge_commit: str | None = None
    progress: str | None = None  # JSON snapshot of the agent's progress
    review: str | None = None  # JSON of the last review summary
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    last_activity: float = 0.0
    prune_warned_at: float | None = None  # when the thread was told this worktree will be pruned


@dataclass(frozen=True)
class Event:
    id: int
    task_id: str | None
    actor: str
    action: str
    detail: dict[str, Any]
    created_at: float


TASK_COLUMNS = tuple(f.name for f in fields(Task))

_MIGRATIONS: tuple[str, ...] = (
    # 1: tasks and the append-only audit log
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        prompt TEXT NOT NULL,
        preset TEXT NOT NULL,
        state TEXT NOT NULL,
        requester TEXT NOT NULL DEFAULT '',
        branch TEXT,
        base_branch TEXT,
        base_commit TEXT,
        worktree TEXT,
        channel TEXT,
        thread_ts TEXT,
        status_ts TEXT,
        review_ts TEXT,
        pid INTEGER,
        exit_code INTEGER,
        reason TEXT,
        run_dir TEXT,
        log_pos INTEGER NOT NULL DEFAULT 0,
        runs INTEGER NOT NULL DEFAULT 0,
        session_id TEXT,
        pending_prompt TEXT,
        closed_by TEXT,
        merge_commit TEXT,
        progress TEXT,
        review TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        last_activity REAL NOT NULL
    );
    CREATE INDEX tasks_state ON tasks(state);
    CREATE INDEX tasks_thread ON tasks(channel, thread_ts);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE INDEX events_task ON events(task_id, id);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 2: key/value state for jobs (e.g. when the last digest was posted)
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 3: prune warnings ("will be pruned in 24h unless kept")
    """
    ALTER TABLE tasks ADD COLUMN prune_warned_at REAL;
    """,
)


class StoreError(Exception):
    pass


class StoreBusy(StoreError):
    """Another process held the database's write lock for longer than the bot waits."""


class Store:
    """The database; open with `await Store.open(path)`, always `await store.close()`."""

    def __init__(
        self, db: aiosqlite.Connection, path: Path, clock: Any = time.time, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.path = path
        self.clock = clock
        self.busy_timeout = busy_timeout

    @classmethod
    async def open(cls, path: Path, clock: Any = time.time, busy_timeout: float = BUSY_TIMEOUT) -> Store:
        """Open (and migrate) the database; a write waits up to `busy_timeout` s for another process's lock."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        try:
            db.row_factory = aiosqlite.Row
            # SQLite's busy handler does the waiting (in aiosqlite's thread, never the event loop)
            await db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            store = cls(db, path, clock, busy_timeout)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(_MIGRATIONS):
            raise StoreError(
                f"{self.path} was written by a newer superset-bot (schema {version}); upgrade the bot"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            async with self.transaction() as db:
                for statement in (s.strip() for s in _split_sql(script)):
                    if statement:
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                raise StoreBusy(
                    f"the database {self.path} stayed locked by another process for {self.busy_timeout:g}s, "
                    f"so nothing was saved ({exc}); is a second superset-bot or a sqlite3 shell holding it?"
                ) from exc
            except BaseException:
                # Cancelled while aiosqlite's thread runs the BEGIN: it still starts the transaction,
                # and left open it would make every later write fail ("cannot start a transaction
                # within a transaction"). Requests run in order, so this ROLLBACK comes after it.
                await self._end_quietly("ROLLBACK")
                raise
            try:
                yield self._db
            except BaseException:
                await self._end_quietly("ROLLBACK")
                raise
            try:
                await self._db.execute("COMMIT")
            except asyncio.CancelledError:
                # the COMMIT is queued in aiosqlite's thread and runs anyway; wait for it, so the
                # lock is not handed on while the transaction is still open
                await self._end_quietly(None)
                raise

    async def _end_quietly(self, statement: str | None) -> None:
        """Queue `statement` (or nothing) on the connection and wait until the queue reached it, even if cancelled."""
        async def end() -> None:
            if statement is None:
                await self._db.execute("SELECT 1")
                return
            with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active": BEGIN had failed
                await self._db.execute(statement)

        job, cancelled = await run_to_end(end())
        job.result()
        if cancelled:
            raise asyncio.CancelledError

    # tasks

    async def create_task(self, task: Task, actor: str, detail: Mapping[str, Any] | None = None) -> Task:
        now = self.clock()
        task = replace(task, created_at=now, updated_at=now, last_activity=now)
        cols = ", ".join(TASK_COLUMNS)
        marks = ", ".join("?" for _ in TASK_COLUMNS)
        async with self.transaction() as db:
            await db.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", [getattr(task, c) for c in TASK_COLUMNS])
            await self._append(db, task.id, actor, "created", {"state": task.state, **(detail or {})}, now)
        return task

    async def get_task(self, task_id: str) -> Task | None:
        async with self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        return _task(row) if row else None

    async def find_by_thread(self, channel: str, thread_ts: str) -> Task | None:
        async with self._db.execute(
            "SELECT * FROM tasks WHERE channel = ? AND thread_ts = ? ORDER BY created_at DESC LIMIT 1",
            (channel, thread_ts),
        ) as cur:
            row = await cur.fetchone()
        return _task(row) if row else None

    async def list_tasks(
        self,
        states: Iterable[str] | None = None,
        *,
        repo: str | None = None,
        requester: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Task]:
        where, args = [], []
        if states is not None:
            state_list = list(states)
            where.append(f"state IN ({', '.join('?' for _ in state_list)})")
            args.extend(state_list)
        for column, value in (("repo", repo), ("requester", requester), ("channel", channel)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC" if newest_first else " ORDER BY created_at, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        async with self._db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [_task(r) for r in rows]

    async def update_task(self, task_id: str, **changes: Any) -> Task:
        """Change fields that are not the state (progress, log position, message ts...)."""
        if "state" in changes:
            raise StoreError("use transition() to change a task's state")
        async with self.transaction() as db:
            task = await self._update(db, task_id, changes)
        return task

    async def transition(
        self,
        task_id: str,
        state: str,
        actor: str,
        *,
        expect: Iterable[str] | None = None,
        detail: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Task | None:
        """Move a task to `state` and log it, atomically; None when its state was not in `expect`."""
        if state not in ALL_STATES:
            raise StoreError(f"unknown state {state!r}")
        async with self.transaction() as db:
            async with db.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise StoreError(f"no task {task_id}")
            previous = row[0]
            if expect is not None and previous not in set(expect):
                return None
            task = await self._update(db, task_id, {**changes, "state": state})
            await self._append(db, task_id, actor, state, {"from": previous, **(detail or {})}, self.clock())
        return task

    async def _update(self, db: aiosqlite.Connection, task_id: str, changes: Mapping[str, Any]) -> Task:
        unknown = set(changes) - set(TASK_COLUMNS)
        if unknown:
            raise StoreError(f"unknown task fields: {', '.join(sorted(unknown))}")
        now = self.clock()
        values = {**changes, "updated_at": now}
        if "last_activity" not in values:
            values["last_activity"] = now
        assignments = ", ".join(f"{c} = ?" for c in values)
        await db.execute(f"UPDATE tasks SET {assignments} WHERE id = ?", [*values.values(), task_id])
        async with db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise StoreError(f"no task {task_id}")
        return _task(row)

    # audit log

    async def add_event(
        self, task_id: str | None, actor: str, action: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        async with self.transaction() as db:
            await self._append(db, task_id, actor, action, detail or {}, self.clock())

    async def _append(
        self,
        db: aiosqlite.Connection,
        task_id: str | None,
        actor: str,
        action: str,
        detail: Mapping[str, Any],
        now: float,
    ) -> None:
        await db.execute(
            "INSERT INTO events (task_id, actor, action, detail, created_at) VALUES (?, ?, ?, ?, ?)",
            (task_id, actor, action, json.dumps(dict(detail), default=str), now),
        )

    async def events(self, task_id: str | None = None, limit: int = 1000) -> list[Event]:
        sql = "SELECT * FROM events"
        args: list[Any] = []
        if task_id is not None:
            sql += " WHERE task_id = ?"
            args.append(task_id)
        sql += f" ORDER BY id LIMIT {int(limit)}"
        async with self._db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [
            Event(r["id"], r["task_id"], r["actor"], r["action"], json.loads(r["detail"]), r["created_at"])
            for r in rows
        ]

    # small key/value state

    async def get_meta(self, key: str) -> str | None:
        async with self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _task(row: aiosqlite.Row) -> Task:
    return Task(**{c: row[c] for c in TASK_COLUMNS})


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    statements, current, depth = [], [], 0
    for line in script.splitlines():
        current.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            depth += 1
        if stripped.endswith(";") and (depth == 0 or stripped.endswith("END;")):
            if stripped.endswith("END;"):
                depth = 0
            statements.append("\n".join(current))
            current = []
    if any(line.strip() for line in current):
        statements.append("\n".join(current))
    return statements
