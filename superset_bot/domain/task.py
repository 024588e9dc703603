"""A task as stored, an audit event, and the JSON text a task carries (progress, review).

The store decodes a row's state into a TaskState (a task built by hand may hold any string:
front ends render unknown states too). `Task.progress` and `Task.review` are stored as JSON
text; read them through `progress_snapshot()` (a typed `ProgressSnapshot`) and `review_data()`,
which never raise on a broken value, and write them with `encode_progress` and `encode_review`.
The fields' codecs are `ProgressSnapshot` (domain/progress.py) and `Review` (domain/review.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.domain.review import Review
from superset_bot.domain.state import TaskState


@dataclass(frozen=True)
class Task:
    id: str
    repo: str
    prompt: str
    preset: str
    state: TaskState = TaskState.QUEUED
    requester: str = ""
    branch: str | None = None
    base_branch: str | None = None
    base_commit: str | None = None
    worktree: str | None = None
    channel: str | None = None  # where the task was asked for (front ends keep their own message ids)
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
    progress: str | None = None  # JSON of the agent's last ProgressSnapshot (progress_snapshot())
    review: str | None = None  # JSON of the last review summary (review_data())
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    last_activity: float = 0.0
    prune_warned_at: float | None = None  # when the thread was told this worktree will be pruned
    race_id: str | None = None  # the race this task is an attempt of (domain/race.py), if any
    race_label: str | None = None  # its name in the race: A, B, C...
    runner: str | None = None  # where its agent runs: None (this process) or "temporal" (worker hosts)
    host: str | None = None  # the worker host holding its worktree (Temporal runner)
    turn: str | None = None  # the workflow id of its turn under way or last run (Temporal runner)

    def progress_snapshot(self) -> ProgressSnapshot:
        """The last saved progress, or NO_PROGRESS when there is none or it is unreadable."""
        return decode_progress(self.progress)

    def review_data(self) -> dict[str, Any] | None:
        """The last saved review (as `Review.to_dict` made it), or None when there is none or it is unreadable."""
        return decode_review(self.review)


@dataclass(frozen=True)
class Event:
    id: int
    task_id: str | None
    actor: str
    action: str
    detail: dict[str, Any]
    created_at: float


def encode_progress(snapshot: ProgressSnapshot) -> str:
    return json.dumps(snapshot.to_dict())


def decode_progress(raw: str | None) -> ProgressSnapshot:
    """A stored progress snapshot; NO_PROGRESS for none, broken JSON, or JSON that is not an object
    (and any unreadable field its neutral value: see `ProgressSnapshot.from_dict`)."""
    return ProgressSnapshot.from_dict(_json_object(raw))


def encode_review(review: Review | Mapping[str, Any]) -> str:
    return json.dumps(review.to_dict() if isinstance(review, Review) else dict(review))


def decode_review(raw: str | None) -> dict[str, Any] | None:
    """A stored review; None for none, broken JSON, or JSON that is not an object."""
    return _json_object(raw)


def _json_object(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
