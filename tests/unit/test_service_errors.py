"""The one error map: what a person is told for each thing that can go wrong in a command."""

from __future__ import annotations

import logging

import pytest

from superset_bot.domain.commands import CommandError, parse
from superset_bot.engine.core import AlreadyClosed, UserError
from superset_bot.git.commands import GitError
from superset_bot.service.errors import Refusal, failure
from superset_bot.service.results import BUSY, CLOSED, GIT, INTERNAL, NOT_POSSIBLE, USAGE, Failed, Refused
from superset_bot.store import MERGED, StoreBusy, Task


def bad_command() -> CommandError:
    with pytest.raises(CommandError) as info:
        parse("merge ../../etc")
    return info.value


def test_each_kind_of_failure_gets_its_own_answer() -> None:
    closed = Task(id="k3x9qa", repo="demo", prompt="p", preset="edit", state=MERGED, closed_by="U0BOB")
    cases = [
        (bad_command(), "merge", USAGE, "is not a task id"),
        (AlreadyClosed(closed), "merge", CLOSED, "already merged by U0BOB"),
        (UserError("Unknown task `zz9zz9`."), "merge", NOT_POSSIBLE, "Unknown task `zz9zz9`."),
        (UserError("No such repo."), "spawn", NOT_POSSIBLE, "No such repo."),
        (GitError("ref is locked"), "merge", GIT, "`merge` on task `k3x9qa` failed in git: ref is locked"),
        (StoreBusy("the database is locked"), "merge", BUSY, "Try again in a minute."),
    ]
    for exc, what, kind, words in cases:
        answer = failure(exc, what, task_id="k3x9qa")
        assert isinstance(answer, Failed) and answer.kind == kind and words in answer.message, (exc, answer)
        assert not answer.ok
    assert failure(AlreadyClosed(closed), "merge").task == closed  # the front end closes the stale review
    # a typed task command gets its usage line; a button (not typed) and spawn's own errors do not
    assert failure(UserError("Unknown task."), "merge", typed=True).message.endswith("Usage: `/superset merge ID`")
    assert "Usage" not in failure(UserError("Unknown task."), "merge").message
    assert "Usage" not in failure(UserError("No such repo."), "spawn", typed=True).message


def test_a_refusal_keeps_its_trusted_text() -> None:
    answer = failure(Refusal("Only <@U0ALICE> can merge it."), "merge")
    assert isinstance(answer, Refused) and answer.reason == "Only <@U0ALICE> can merge it." and not answer.ok


def test_an_unexpected_error_is_logged_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="superset_bot.service.errors"):
        answer = failure(KeyError("secret internals"), "discard", task_id="k3x9qa")
    assert isinstance(answer, Failed) and answer.kind == INTERNAL
    assert "secret internals" not in answer.message and "log has the details" in answer.message
    assert any("secret internals" in (r.exc_text or "") or r.exc_info for r in caplog.records)
