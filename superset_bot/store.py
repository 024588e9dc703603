"""Tasks and their audit log in SQLite, the bot's memory across restarts.

One long-lived connection does all writes; each transaction holds an asyncio lock and runs
`BEGIN IMMEDIATE ... COMMIT`, so state changes are atomic and compare-and-swap transitions
(`transition(..., expect=...)`) make a double click or a retried request act once; a move the
state machine has no arrow for (domain/state.py TRANSITIONS) is refused in the same transaction.
The connection must be closed on shutdown: aiosqlite's worker thread would keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import aiosqlite

from superset_bot.aio import run_to_end
from superset_bot.domain.pullrequest import PullRequest
from superset_bot.domain.race import RACE_TRANSITIONS, Race, RaceState, decode_presets, decode_race_state
from superset_bot.domain.spend import USAGE, Spend, Usage, sum_by
from superset_bot.domain.state import (
    ACTIVE,
    ALL,
    CLOSED,
    REVIEWABLE,
    TRANSIENT,
    TaskState,
    UnknownState,
    decode_state,
    encode_state,
)
from superset_bot.domain.task import Event, Task

# Task states (domain/state.py has the enum and its transition table). These names stay for the
# many modules that import them from here; they are the enum's members, which are strings.
QUEUED, PREPARING, RUNNING = TaskState.QUEUED, TaskState.PREPARING, TaskState.RUNNING
FINISHED, FAILED, CANCELLED, TIMED_OUT = TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT
MERGING, MERGED = TaskState.MERGING, TaskState.MERGED
DISCARDING, DISCARDED, PRUNED = TaskState.DISCARDING, TaskState.DISCARDED, TaskState.PRUNED
ACTIVE_STATES, REVIEWABLE_STATES, CLOSED_STATES = ACTIVE, REVIEWABLE, CLOSED
TRANSIENT_STATES, ALL_STATES = TRANSIENT, ALL

# the audit action that marks a closed task's branch as kept: it holds work nobody has seen (commits a
# pull request merged or closed on its host did not have); housekeeping leaves such a branch alone
BRANCH_KEPT = "branch_kept"

BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's lock before giving up
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/1/i/l/o: easy to read aloud and type


def new_task_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


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
    # 4: Slack's message ids leave the task record. The Slack front end owns slack_messages
    # (frontends/slack/messages.py reads and writes it); it is created here so that the ids of tasks
    # in flight are moved before the columns that held them are dropped.
    """
    CREATE TABLE slack_messages (
        task_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        status_ts TEXT,
        review_ts TEXT
    );
    INSERT INTO slack_messages (task_id, channel, thread_ts, status_ts, review_ts)
        SELECT id, channel, thread_ts, status_ts, review_ts FROM tasks WHERE channel <> '' AND thread_ts <> '';
    DROP INDEX tasks_thread;
    ALTER TABLE tasks DROP COLUMN thread_ts;
    ALTER TABLE tasks DROP COLUMN status_ts;
    ALTER TABLE tasks DROP COLUMN review_ts;
    CREATE INDEX tasks_channel ON tasks(channel);
    """,
    # 5: the pull request a task's work is delivered through (`deliver: pr`), as domain/pullrequest.py
    # encodes it; `state` beside it so the open ones are found without decoding every row
    """
    CREATE TABLE pull_requests (
        task_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX pull_requests_state ON pull_requests(state);
    """,
    # 6: races (domain/race.py): one prompt tried by several attempts, each a task naming its race
    """
    CREATE TABLE races (
        id TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        prompt TEXT NOT NULL,
        requester TEXT NOT NULL,
        presets TEXT NOT NULL,
        base_branch TEXT NOT NULL,
        base_commit TEXT NOT NULL,
        channel TEXT,
        state TEXT NOT NULL,
        winner TEXT,
        closed_by TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX races_state ON races(state);
    ALTER TABLE tasks ADD COLUMN race_id TEXT;
    ALTER TABLE tasks ADD COLUMN race_label TEXT;
    CREATE INDEX tasks_race ON tasks(race_id);
    """,
    # 7: tasks run on worker hosts through Temporal: which runner, the host holding the worktree,
    # and the workflow of the turn under way
    """
    ALTER TABLE tasks ADD COLUMN runner TEXT;
    ALTER TABLE tasks ADD COLUMN host TEXT;
    ALTER TABLE tasks ADD COLUMN turn TEXT;
    """,
)

log = logging.getLogger(__name__)


class StoreError(Exception):
    pass


class StoreBusy(StoreError):
    """Another process held the database's write lock for longer than the bot waits."""


class IllegalTransition(StoreError):
    """A move the state machine (domain/state.py TRANSITIONS) has no arrow for; nothing was written."""

    def __init__(self, task_id: str, previous: TaskState, state: TaskState) -> None:
        allowed = ", ".join(sorted(previous.successors)) or "nothing: it is closed"
        super().__init__(f"task {task_id} cannot move from {previous} to {state} (from {previous} it may go to {allowed})")
        self.task_id, self.previous, self.state = task_id, previous, state


class CorruptTask(StoreError):
    """A stored task row the bot cannot read (an unknown state: a newer bot wrote it, or a hand edit)."""


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

    @property
    def writing(self) -> bool:
        """A write of this process holds the database (or waits for another process's lock)."""
        return self._lock.locked()

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
                    if statement and not _unsupported(statement):
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
        try:
            state = decode_state(task.state, task.id)
        except UnknownState as exc:
            raise StoreError(f"{exc}; nothing was stored") from None
        now = self.clock()
        task = replace(task, state=state, created_at=now, updated_at=now, last_activity=now)
        cols = ", ".join(TASK_COLUMNS)
        marks = ", ".join("?" for _ in TASK_COLUMNS)
        async with self.transaction() as db:
            await db.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", _row_values(task))
            await self._append(db, task.id, actor, "created", {"state": task.state.value, **(detail or {})}, now)
        return task

    async def get_task(self, task_id: str) -> Task | None:
        async with self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)) as cur:
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
            state_list = [s.value if isinstance(s, TaskState) else s for s in states]
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
        tasks = []
        for row in rows:
            try:
                tasks.append(_task(row))
            except CorruptTask as exc:  # one unreadable row must not hide every other task
                log.error("skipping a task row: %s", exc)
        return tasks

    async def update_task(self, task_id: str, **changes: Any) -> Task:
        """Change fields that are not the state (progress, log position, review...)."""
        if "state" in changes:
            raise StoreError("use transition() to change a task's state")
        async with self.transaction() as db:
            task = await self._update(db, task_id, changes)
        return task

    async def transition(
        self,
        task_id: str,
        state: TaskState | str,
        actor: str,
        *,
        expect: Iterable[str] | None = None,
        detail: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Task | None:
        """Move a task to `state` and log it, atomically; None when its state was not in `expect`.

        `expect` is the caller's compare-and-swap guard (a lost race answers None); a move the
        state machine forbids raises IllegalTransition, in the same transaction, writing nothing.
        """
        try:
            target = decode_state(state)
        except UnknownState:
            raise StoreError(f"unknown state {state!r}") from None
        async with self.transaction() as db:
            async with db.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise StoreError(f"no task {task_id}")
            previous = _decode_state(row[0], task_id)
            if expect is not None and previous not in set(expect):
                return None
            if not previous.may_become(target):
                raise IllegalTransition(task_id, previous, target)
            task = await self._update(db, task_id, {**changes, "state": target})
            await self._append(db, task_id, actor, target.value, {"from": previous.value, **(detail or {})},
                               self.clock())
        return task

    async def _update(self, db: aiosqlite.Connection, task_id: str, changes: Mapping[str, Any]) -> Task:
        unknown = set(changes) - set(TASK_COLUMNS)
        if unknown:
            raise StoreError(f"unknown task fields: {', '.join(sorted(unknown))}")
        now = self.clock()
        values = {**changes, "updated_at": now}
        if "state" in values:
            values["state"] = encode_state(values["state"])
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

    async def kept_branches(self) -> set[str]:
        """Ids of closed tasks whose branch is kept on purpose (BRANCH_KEPT)."""
        async with self._db.execute("SELECT DISTINCT task_id FROM events WHERE action = ?", (BRANCH_KEPT,)) as cur:
            return {row[0] for row in await cur.fetchall() if row[0]}

    # what agents cost (domain/spend.py)

    async def usage_since(self, since: float) -> list[Usage]:
        """Every run's usage recorded since `since`, with whose task and which repo it was."""
        async with self._db.execute(
            "SELECT e.task_id AS task_id, t.requester AS requester, t.repo AS repo, e.detail AS detail "
            "FROM events e JOIN tasks t ON t.id = e.task_id WHERE e.action = ? AND e.created_at >= ?",
            (USAGE, since)) as cur:
            rows = await cur.fetchall()
        return _usages(rows)

    async def spend_of(self, task_ids: Iterable[str]) -> dict[str, Spend]:
        """What each of these tasks cost over all its runs (tasks without a finished run are left out)."""
        ids = list(dict.fromkeys(task_ids))
        found: list[Usage] = []
        for start in range(0, len(ids), 500):  # SQLite's bound on one statement's parameters
            chunk = ids[start:start + 500]
            async with self._db.execute(
                "SELECT task_id, '' AS requester, '' AS repo, detail FROM events WHERE action = ? AND task_id IN "
                f"({', '.join('?' for _ in chunk)})", (USAGE, *chunk)) as cur:
                found += _usages(await cur.fetchall())
        return sum_by(found, "task_id")

    async def spend_since(self, since: float, by: str) -> dict[str, Spend]:
        """The usage recorded since `since`, summed per task requester (`by="requester"`) or repo."""
        return sum_by(await self.usage_since(since), by)

    # pull requests (`deliver: pr`)

    async def save_pull(self, pull: PullRequest) -> PullRequest:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO pull_requests (task_id, state, data, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(task_id) DO UPDATE SET state = excluded.state, data = excluded.data, "
                "updated_at = excluded.updated_at",
                (pull.task_id, str(pull.state), json.dumps(pull.to_dict()), self.clock()))
        return pull

    async def get_pull(self, task_id: str) -> PullRequest | None:
        async with self._db.execute("SELECT data FROM pull_requests WHERE task_id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        return _pull(row[0]) if row else None

    async def open_pulls(self) -> list[PullRequest]:
        async with self._db.execute("SELECT data FROM pull_requests WHERE state = 'open' ORDER BY rowid") as cur:
            rows = await cur.fetchall()
        return [p for p in (_pull(r[0]) for r in rows) if p is not None]

    # races (domain/race.py)

    async def create_race(self, race: Race, attempts: Iterable[Task], actor: str) -> tuple[Race, list[Task]]:
        """The race and all its attempts in one transaction: a race is never stored half started."""
        now = self.clock()
        race = replace(race, state=RaceState.OPEN, created_at=now, updated_at=now)
        created: list[Task] = []
        cols = ", ".join(TASK_COLUMNS)
        marks = ", ".join("?" for _ in TASK_COLUMNS)
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO races (id, repo, prompt, requester, presets, base_branch, base_commit, channel, state, "
                "winner, closed_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (race.id, race.repo, race.prompt, race.requester, race.encode_presets(), race.base_branch,
                 race.base_commit, race.channel, str(race.state), None, None, now, now))
            for attempt in attempts:
                task = replace(attempt, state=QUEUED, race_id=race.id, created_at=now, updated_at=now,
                               last_activity=now)
                await db.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", _row_values(task))
                await self._append(db, task.id, actor, "created",
                                   {"state": task.state.value, "repo": task.repo, "preset": task.preset,
                                    "base": task.base_branch, "race": race.id, "attempt": task.race_label}, now)
                created.append(task)
        return race, created

    async def get_race(self, race_id: str) -> Race | None:
        async with self._db.execute("SELECT * FROM races WHERE id = ?", (race_id,)) as cur:
            row = await cur.fetchone()
        return _race(row) if row else None

    async def races_in(self, states: Iterable[RaceState]) -> list[Race]:
        wanted = [str(s) for s in states]
        async with self._db.execute(
                f"SELECT * FROM races WHERE state IN ({', '.join('?' for _ in wanted)}) ORDER BY created_at, rowid",
                wanted) as cur:
            rows = await cur.fetchall()
        return [_race(r) for r in rows]

    async def race_attempts(self, race_id: str) -> list[Task]:
        """The race's attempts in label order."""
        async with self._db.execute("SELECT * FROM tasks WHERE race_id = ? ORDER BY race_label, rowid",
                                    (race_id,)) as cur:
            rows = await cur.fetchall()
        return [_task(r) for r in rows]

    async def race_transition(self, race_id: str, state: RaceState, actor: str, *, expect: Iterable[RaceState],
                              **changes: Any) -> Race | None:
        """Move a race to `state` if it is in `expect` (compare-and-swap, as `transition` is for tasks);
        None when it was not. A move the race table lacks raises IllegalTransition."""
        unknown = set(changes) - {"winner", "closed_by"}
        if unknown:
            raise StoreError(f"unknown race fields: {', '.join(sorted(unknown))}")
        async with self.transaction() as db:
            async with db.execute("SELECT state FROM races WHERE id = ?", (race_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise StoreError(f"no race {race_id}")
            previous = decode_race_state(row[0])
            if previous not in set(expect):
                return None
            if state not in RACE_TRANSITIONS[previous]:
                raise StoreError(f"race {race_id} may not move from {previous} to {state}")
            now = self.clock()
            values = {**changes, "state": str(state), "updated_at": now}
            await db.execute(f"UPDATE races SET {', '.join(f'{c} = ?' for c in values)} WHERE id = ?",
                             [*values.values(), race_id])
            await self._append(db, None, actor, f"race_{state}", {"race": race_id, "from": str(previous), **changes},
                               now)
            async with db.execute("SELECT * FROM races WHERE id = ?", (race_id,)) as cur:
                moved = await cur.fetchone()
        assert moved is not None
        return _race(moved)

    # tables a front end owns (the Slack front end's slack_messages)

    async def fetch_all(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """The rows of one read-only query; writes go through `transaction()`."""
        async with self._db.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

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


def _pull(raw: str) -> PullRequest | None:
    try:
        return PullRequest.from_dict(json.loads(raw))
    except (ValueError, TypeError, RecursionError):
        return None


def _usages(rows: Iterable[aiosqlite.Row]) -> list[Usage]:
    """Usage events as the ledger holds them (task_id, requester, repo, detail); unreadable ones skipped."""
    found = []
    for row in rows:
        try:
            detail = json.loads(row["detail"])
        except (ValueError, TypeError):
            continue
        if isinstance(detail, dict):
            found.append(Usage(row["task_id"], row["requester"], row["repo"], detail))
    return found


def _race(row: aiosqlite.Row) -> Race:
    return Race(id=row["id"], repo=row["repo"], prompt=row["prompt"], requester=row["requester"],
                presets=decode_presets(row["presets"]), base_branch=row["base_branch"],
                base_commit=row["base_commit"], channel=row["channel"], state=decode_race_state(row["state"]),
                winner=row["winner"], closed_by=row["closed_by"], created_at=row["created_at"],
                updated_at=row["updated_at"])


def _unsupported(statement: str) -> bool:
    """DROP COLUMN needs SQLite 3.35 (2021); an older library keeps the unused columns instead of
    refusing to start (rows are read by TASK_COLUMNS, so a leftover column is never seen)."""
    return "DROP COLUMN" in statement.upper() and sqlite3.sqlite_version_info < (3, 35, 0)


def _task(row: aiosqlite.Row) -> Task:
    """A stored row as a Task; CorruptTask (naming it) when its state is none the bot knows."""
    values = {c: row[c] for c in TASK_COLUMNS}
    values["state"] = _decode_state(values["state"], values["id"])
    return Task(**values)


def _decode_state(value: object, task_id: str) -> TaskState:
    try:
        return decode_state(value, task_id)
    except UnknownState as exc:
        raise CorruptTask(f"{exc}; it was written by another superset-bot version or edited by hand. "
                          "Upgrade the bot, or set the task's state to a known one with sqlite3") from None


def _row_values(task: Task) -> list[Any]:
    """The task's column values as stored: the state as its string."""
    return [encode_state(task.state) if c == "state" else getattr(task, c) for c in TASK_COLUMNS]


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
