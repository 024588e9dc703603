"""Where a task lives in Slack: its thread's root message, status card and latest review (`slack_messages`).

The Slack front end owns this table (store.py's migration 4 creates it). Its rows are cached in
memory, loaded at start, because engine events are handled synchronously.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from superset_bot.store import Store


@dataclass(frozen=True)
class SlackIds:
    """The Slack ids of one task's messages."""

    channel: str
    thread_ts: str  # the root message, which is the thread
    status_ts: str | None = None  # the status card in the thread
    review_ts: str | None = None  # the latest review message (its buttons are removed once closed)


class SlackMessages:
    """The `slack_messages` table, cached: reads are synchronous, writes go to the store first."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_task: dict[str, SlackIds] = {}
        self._by_thread: dict[tuple[str, str], str] = {}

    async def load(self) -> None:
        rows = await self.store.fetch_all(
            "SELECT task_id, channel, thread_ts, status_ts, review_ts FROM slack_messages ORDER BY rowid")
        for row in rows:
            self._remember(row["task_id"], SlackIds(row["channel"], row["thread_ts"], row["status_ts"],
                                                    row["review_ts"]))

    def get(self, task_id: str) -> SlackIds | None:
        return self._by_task.get(task_id)

    def task_in_thread(self, channel: str, thread_ts: str) -> str | None:
        """The id of the (newest) task whose thread this is, or None."""
        return self._by_thread.get((channel, thread_ts))

    async def open_thread(self, task_id: str, channel: str, thread_ts: str) -> SlackIds:
        """Record a task's root message; posted before the task exists, so its id is `pending.id`."""
        ids = SlackIds(channel, thread_ts)
        async with self.store.transaction() as db:
            await db.execute("INSERT OR REPLACE INTO slack_messages (task_id, channel, thread_ts) VALUES (?, ?, ?)",
                             (task_id, channel, thread_ts))
        self._remember(task_id, ids)
        return ids

    async def set_status(self, task_id: str, status_ts: str) -> SlackIds:
        return await self._set(task_id, "status_ts", status_ts)

    async def set_review(self, task_id: str, review_ts: str) -> SlackIds:
        return await self._set(task_id, "review_ts", review_ts)

    async def forget(self, task_id: str) -> None:
        """A task that was not started after all: its thread names no task."""
        async with self.store.transaction() as db:
            await db.execute("DELETE FROM slack_messages WHERE task_id = ?", (task_id,))
        ids = self._by_task.pop(task_id, None)
        if ids is not None and self._by_thread.get((ids.channel, ids.thread_ts)) == task_id:
            del self._by_thread[(ids.channel, ids.thread_ts)]

    async def _set(self, task_id: str, column: str, ts: str) -> SlackIds:
        if task_id not in self._by_task:
            raise KeyError(f"task {task_id} has no Slack thread")
        async with self.store.transaction() as db:
            await db.execute(f"UPDATE slack_messages SET {column} = ? WHERE task_id = ?", (ts, task_id))
        ids = self._by_task[task_id] = replace(self._by_task[task_id], **{column: ts})
        return ids

    def _remember(self, task_id: str, ids: SlackIds) -> None:
        self._by_task[task_id] = ids
        self._by_thread[(ids.channel, ids.thread_ts)] = task_id
