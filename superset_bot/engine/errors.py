"""The errors the engine raises for people: what was wrong and what to do about it."""

from __future__ import annotations

from superset_bot.store import MERGED, Task


class UserError(Exception):
    """Something the person can fix; the message says what was wrong and what to do."""


class AlreadyClosed(UserError):
    """The task was already merged or discarded (a second click, a retried request)."""

    def __init__(self, task: Task) -> None:
        verb = "merged" if task.state == MERGED else task.state
        who = f" by {task.closed_by}" if task.closed_by else ""
        super().__init__(f"Task {task.id} was already {verb}{who}; nothing changed.")
        self.task = task
