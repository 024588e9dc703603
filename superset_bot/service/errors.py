"""The one map from what can go wrong in a command to what the person is told."""

from __future__ import annotations

import logging

from superset_bot.domain.commands import SPECS, CommandError
from superset_bot.domain.commands import usage as usage_line
from superset_bot.engine.core import AlreadyClosed, UserError
from superset_bot.git.commands import GitError
from superset_bot.service.results import (
    BUSY,
    CLOSED,
    GIT,
    INTERNAL,
    NOT_POSSIBLE,
    USAGE,
    Failed,
    Refused,
    Result,
)
from superset_bot.store import StoreBusy

log = logging.getLogger(__name__)


class Refusal(Exception):
    """Raised (also by a front end's callbacks) to refuse with a trusted sentence."""


def failure(exc: BaseException, what: str, prefix: str = "/superset", task_id: str | None = None,
            typed: bool = False) -> Result:
    """The answer for `exc` raised while doing `what` (a command name or a button's verb); `typed`:
    the person typed the command, so a task command's usage line helps (a button needs none)."""
    on = f" on task `{task_id}`" if task_id else ""
    if isinstance(exc, Refusal):
        return Refused(str(exc), what)
    if isinstance(exc, CommandError):
        return Failed(USAGE, str(exc), what)
    if isinstance(exc, AlreadyClosed):
        return Failed(CLOSED, str(exc), what, exc.task)
    if isinstance(exc, UserError):
        # a task command gets its usage line; spawn's errors (bad repo, preset) explain themselves
        usage = f"\nUsage: {usage_line(what, prefix)}" if typed and what in SPECS and SPECS[what].needs_task else ""
        return Failed(NOT_POSSIBLE, f"{exc}{usage}", what)
    if isinstance(exc, GitError):
        return Failed(GIT, f"`{what}`{on} failed in git: {exc}", what)
    if isinstance(exc, StoreBusy):
        return Failed(BUSY, f"`{what}`{on} could not be done: {exc}. Try again in a minute.", what)
    log.error("%s%s failed", what, on, exc_info=exc)
    return Failed(INTERNAL, f"`{what}`{on} failed unexpectedly; the bot's log has the details.", what)
