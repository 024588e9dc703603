"""A task's pull request and its checks: the verdict rules and the codec the store and reviews carry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import FUZZ

from superset_bot.domain.pullrequest import Check, CheckState, PullRequest, PullState, check_state, overall

PENDING, SUCCESS, FAILURE = CheckState.PENDING, CheckState.SUCCESS, CheckState.FAILURE


def pull(**kw: object) -> PullRequest:
    base = PullRequest("k3x9qa", "github", "acme/web", 12, "https://github.com/acme/web/pull/12", "superset/k3x9qa",
                       "main", PullState.OPEN, "a" * 40)
    return PullRequest(**{**base.__dict__, **kw})  # type: ignore[arg-type]


def test_the_verdict_fails_on_any_failure_waits_on_any_pending_and_passes_only_when_all_passed() -> None:
    assert overall(()) == CheckState.NONE
    assert overall((Check("a", SUCCESS), Check("b", PENDING))) == PENDING
    assert overall((Check("a", PENDING), Check("b", FAILURE))) == FAILURE
    assert overall((Check("a", SUCCESS), Check("b", SUCCESS))) == SUCCESS


def test_a_hosts_words_map_to_what_they_mean_for_a_merge() -> None:
    for word in ("success", "neutral", "skipped"):
        assert check_state(word) == SUCCESS
    for word in ("failure", "error", "cancelled", "timed_out", "action_required", "startup_failure"):
        assert check_state(word) == FAILURE
    for word in ("pending", "queued", "in_progress", None, "", "something-new"):
        assert check_state(word) == PENDING, "an unknown word never passes a check"


def test_the_codec_round_trips_and_names_the_failing_checks() -> None:
    checks = (Check("lint", FAILURE, "2 errors", "https://x/1"), Check("tests", SUCCESS))
    original = pull(checks=checks, merged_by="U1", merge_commit="b" * 40)
    data = original.to_dict()
    assert data["checks_state"] == "failure" and data["state"] == "open"
    assert PullRequest.from_dict(data) == original
    assert original.failing() == (checks[0],) and original.label == "acme/web#12"
    fresh = original.with_checks("c" * 40, ())
    assert fresh.checks_state == CheckState.NONE and fresh.head_sha == "c" * 40 and fresh.number == 12


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=6), max_leaves=20))
def test_anything_stored_decodes_to_a_pull_request_or_none_and_never_raises(value: object) -> None:
    decoded = PullRequest.from_dict(value)
    assert decoded is None or isinstance(decoded, PullRequest)


def test_broken_fields_fall_back_to_safe_values() -> None:
    data = pull().to_dict() | {"state": "reopened-somehow", "checks": [{"name": "x", "state": "bogus"}, 7, {}]}
    decoded = PullRequest.from_dict(data)
    assert decoded is not None and decoded.state == PullState.OPEN
    assert decoded.checks == (Check("x", PENDING),)
    assert PullRequest.from_dict(pull().to_dict() | {"number": True}) is None, "a bool is not a number"
