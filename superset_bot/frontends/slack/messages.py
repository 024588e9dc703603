"""Where a task lives in Slack: its thread's root message (its live card), the status reaction on it and
its latest review (`slack_messages`).

The Slack front end owns this table. store.py's migration 4 created it when these ids left the
task record; the columns added since are added here, at load. Rows are cached in memory, loaded at
start, because engine events are handled synchronously.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from superset_bot.store import Store


@dataclass(frozen=True)
class SlackIds:
    """The Slack ids of one task's messages."""

    channel: str
    thread_ts: str  # the root message, which is the thread
    status_ts: str | None = None  # a status card in the thread (older releases; the root is the card now)
    review_ts: str | None = None  # the latest review message (its buttons are removed once closed)
    reaction: str | None = None  # the status reaction on the task's card, as Slack confirmed it
    card_ts: str | None = None  # the task's live card when it is not the thread's root (a race's attempt)

    @property
    def card(self) -> str:
        """The message that is the task's live card (and carries its status reaction)."""
        return self.card_ts or self.thread_ts


class SlackMessages:
    """The `slack_messages` table, cached: reads are synchronous, writes go to the store first."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_task: dict[str, SlackIds] = {}
        self._by_thread: dict[tuple[str, str], str] = {}

    async def load(self) -> None:
        columns = {row["name"] for row in await self.store.fetch_all("PRAGMA table_info(slack_messages)")}
        for column in ("reaction", "card_ts"):
            if column not in columns:
                async with self.store.transaction() as db:
                    await db.execute(f"ALTER TABLE slack_messages ADD COLUMN {column} TEXT")
        rows = await self.store.fetch_all(
            "SELECT task_id, channel, thread_ts, status_ts, review_ts, reaction, card_ts FROM slack_messages "
            "ORDER BY rowid")
        for row in rows:
            self._remember(row["task_id"], SlackIds(row["channel"], row["thread_ts"], row["status_ts"],
                                                    row["review_ts"], row["reaction"], row["card_ts"]))

    def reactions(self) -> dict[tuple[str, str], str | None]:
        """The status reaction on each task's card, as last confirmed (to seed the outbox after a restart)."""
        return {(ids.channel, ids.card): ids.reaction for ids in self._by_task.values()}

    def get(self, task_id: str) -> SlackIds | None:
        return self._by_task.get(task_id)

    def task_in_thread(self, channel: str, thread_ts: str) -> str | None:
        """The id of the (newest) task whose thread this is, or None (a race's thread holds several: see
        frontends/slack/races.py)."""
        return self._by_thread.get((channel, thread_ts))

    async def open_thread(self, task_id: str, channel: str, thread_ts: str, card_ts: str | None = None) -> SlackIds:
        """Record a task's root message (or, for a race's attempt, the race's root and the attempt's card
        in its thread); posted before the task exists, so its id is `pending.id`."""
        ids = SlackIds(channel, thread_ts, card_ts=card_ts)
        async with self.store.transaction() as db:
            if card_ts is None:  # the shape every release wrote (card_ts is added at load)
                await db.execute("INSERT OR REPLACE INTO slack_messages (task_id, channel, thread_ts) VALUES (?, ?, ?)",
                                 (task_id, channel, thread_ts))
            else:
                await db.execute("INSERT OR REPLACE INTO slack_messages (task_id, channel, thread_ts, card_ts) "
                                 "VALUES (?, ?, ?, ?)", (task_id, channel, thread_ts, card_ts))
        self._remember(task_id, ids)
        return ids

    async def set_status(self, task_id: str, status_ts: str | None) -> SlackIds:
        return await self._set(task_id, "status_ts", status_ts)

    async def set_review(self, task_id: str, review_ts: str) -> SlackIds:
        return await self._set(task_id, "review_ts", review_ts)

    async def reaction_set(self, channel: str, ts: str, name: str | None) -> None:
        """Slack confirmed `name` (None: none) as the reaction on the card `ts`."""
        task_id = self._by_thread.get((channel, ts))
        if task_id is not None and task_id in self._by_task:
            await self._set(task_id, "reaction", name)

    async def forget(self, task_id: str) -> None:
        """A task that was not started after all: its thread names no task."""
        async with self.store.transaction() as db:
            await db.execute("DELETE FROM slack_messages WHERE task_id = ?", (task_id,))
        ids = self._by_task.pop(task_id, None)
        if ids is not None and self._by_thread.get((ids.channel, ids.card)) == task_id:
            del self._by_thread[(ids.channel, ids.card)]

    async def _set(self, task_id: str, column: Literal["status_ts", "review_ts", "reaction"],
                   value: str | None) -> SlackIds:
        if task_id not in self._by_task:
            raise KeyError(f"task {task_id} has no Slack thread")
        async with self.store.transaction() as db:
            await db.execute(f"UPDATE slack_messages SET {column} = ? WHERE task_id = ?", (value, task_id))
        changes: dict[str, Any] = {column: value}
        ids = self._by_task[task_id] = replace(self._by_task[task_id], **changes)
        return ids

    def _remember(self, task_id: str, ids: SlackIds) -> None:
        self._by_task[task_id] = ids
        self._by_thread[(ids.channel, ids.card)] = task_id  # a race's root names no task: its attempts' cards do
