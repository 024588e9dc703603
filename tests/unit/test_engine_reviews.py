"""The checks part of a review: which plugin outcome it comes from, and what of it a review shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from superset_bot.engine.reviews import checks_result, checks_view
from superset_bot.plugins.hooks import PluginOutcome
from superset_bot.redact import REDACTED, Redactor

SECRET = "sk-checks-secret-77"


def outcome(plugin: str, result: Any, ok: bool = True) -> PluginOutcome:
    return PluginOutcome(plugin=plugin, event="agent_finished", ok=ok, timed_out=False,
                         error=None if ok else "boom", result=result, duration=0.1)


@dataclass
class Checks:
    passed: bool
    summary: str
    failing_tail: str | None = None


def test_the_result_is_the_checks_plugins_when_it_ran_and_returned_one() -> None:
    mine = Checks(True, "3 passed")
    assert checks_result([outcome("other", "x"), outcome("checks", mine)]) is mine
    assert checks_result([outcome("checks", mine, ok=False)]) is None
    assert checks_result([outcome("checks", None), outcome("other", mine)]) is None
    assert checks_result([]) is None


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
