"""The checks part of a review: what of the checks step's result a review shows."""

from __future__ import annotations

from dataclasses import dataclass

from superset_bot.engine.checks import ChecksResult
from superset_bot.engine.reviews import checks_view
from superset_bot.redact import REDACTED, Redactor

SECRET = "sk-checks-secret-77"


@dataclass
class Checks:
    passed: bool
    summary: str
    failing_tail: str | None = None


def test_the_view_of_the_checks_steps_result_keeps_its_verdict() -> None:
    redactor = Redactor([SECRET])
    passed = ChecksResult(True, [], "all 3 checks passed", "")
    assert checks_view(passed, redactor) == {"passed": True, "summary": "all 3 checks passed", "failing_tail": ""}
    failed = ChecksResult(False, [], "check failed", f"E {SECRET}")
    assert checks_view(failed, redactor) == {"passed": False, "summary": "check failed",
                                             "failing_tail": f"E {REDACTED}"}


def test_the_view_is_plain_values_with_secrets_redacted() -> None:
    redactor = Redactor([SECRET])
    failed = Checks(False, f"1 failed: token {SECRET}", failing_tail=f"assert {SECRET!r}")
    assert checks_view(failed, redactor) == {
        "passed": False,
        "summary": f"1 failed: token {REDACTED}",
        "failing_tail": f"assert '{REDACTED}'",
    }

    class Bare:  # a plugin's own result type, without a failing tail
        passed = 1
        summary = 42

    assert checks_view(Bare(), redactor) == {"passed": True, "summary": "42", "failing_tail": ""}
