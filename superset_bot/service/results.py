"""What a command or button did, as data: every front end renders these and nothing else.

A command's answer is decided by the service, never by a front end inspecting engine exceptions;
the front end gets one of these results and turns it into Slack blocks or terminal lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from superset_bot.domain.logs import LogChunk
from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.domain.race import AttemptFigures, Race
from superset_bot.housekeeping.jobs import Digest, PruneReport
from superset_bot.store import Task


@dataclass(frozen=True)
class Result:
    """Base of every answer; `ok` is False for refusals and failures."""

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True)
class Help(Result):
    commands: tuple[str, ...]  # the commands this person may use, in the grammar's order


@dataclass(frozen=True)
class Started(Result):
    task: Task


@dataclass(frozen=True)
class NeedsPrompt(Result):
    """`spawn` without a prompt: a front end with forms asks for one, others show the usage."""

    options: Mapping[str, str] = field(default_factory=dict)
    command: str = "spawn"  # or "race" (its options hold "attempts")


@dataclass(frozen=True)
class TaskList(Result):
    tasks: tuple[Task, ...]  # in a channel: only its tasks and the caller's own


@dataclass(frozen=True)
class Status(Result):
    task: Task
    progress: ProgressSnapshot  # NO_PROGRESS before the agent ran
    queue_position: int | None


@dataclass(frozen=True)
class Diff(Result):
    task: Task
    patch: str


@dataclass(frozen=True)
class Log(Result):
    """The end of a task's agent log (`log.offset` > 0: its beginning was left out)."""

    task: Task
    log: LogChunk


@dataclass(frozen=True)
class Done(Result):
    """A task action that went through: merge, discard, cancel, followup, keep, update."""

    verb: str
    task: Task


@dataclass(frozen=True)
class RaceStarted(Result):
    race: Race
    attempts: tuple[Task, ...]  # in label order


@dataclass(frozen=True)
class RaceView(Result):
    """A race as the comparison card shows it: every attempt's figures, ranked by nothing."""

    race: Race
    attempts: tuple[Task, ...]
    figures: tuple[AttemptFigures, ...]


@dataclass(frozen=True)
class RaceDone(Result):
    """A race action that went through (Discard all)."""

    verb: str
    race: Race


@dataclass(frozen=True)
class RaceFollowups(Result):
    """A follow-up in a race thread: which attempts got it, and why the others did not."""

    race: Race
    sent: tuple[tuple[str, str, str | None], ...]  # (label, task id, None or why it was not sent)


@dataclass(frozen=True)
class AttemptsDiff(Result):
    """What the second attempt's branch has that differs from the first's."""

    first: Task
    second: Task
    patch: str


@dataclass(frozen=True)
class Presets(Result):
    presets: tuple[tuple[str, str], ...]  # (name, description), sorted by name


@dataclass(frozen=True)
class Repos(Result):
    repos: tuple[tuple[str, str], ...]  # (name, path) in configuration order
    default: str | None


@dataclass(frozen=True)
class Pruned(Result):
    report: PruneReport


@dataclass(frozen=True)
class DigestNow(Result):
    digest: Digest


@dataclass(frozen=True)
class Refused(Result):
    """Access control or a rule said no; `reason` is trusted text (it may hold mentions)."""

    reason: str
    command: str = ""

    @property
    def ok(self) -> bool:
        return False


# what went wrong, for a front end that styles failures differently
USAGE, NOT_POSSIBLE, CLOSED, GIT, BUSY, INTERNAL = "usage", "not_possible", "closed", "git", "busy", "internal"


@dataclass(frozen=True)
class Failed(Result):
    """A command that did not work; `message` is a sentence for the person, never a traceback."""

    kind: str
    message: str
    command: str = ""
    task: Task | None = None  # set for CLOSED: the task as it is now

    @property
    def ok(self) -> bool:
        return False

