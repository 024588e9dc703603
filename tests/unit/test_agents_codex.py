"""The Codex `exec --json` parser over output recorded from the real CLI (tests/samples/codex_*.jsonl).

The recorded files come from `realagents.codex.record` (`make record-agents`): Codex 0.171 run with
the shipped preset in a linked worktree at /srv/wt/codex-task (paths normalised), stdout and
stderr merged as in the engine's log. codex_exec.jsonl and codex_legacy.jsonl are hand-made, for
item types and old shapes the fake model cannot make Codex print.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from support import agentsamples
from support.agentsamples import SAMPLES

from superset_bot.agents.formats import AgentEvent, Progress, make_parser
from superset_bot.agents.formats.codex import CARRY_CACHED, CARRY_IN, CARRY_OUT, api_status
from superset_bot.domain.prices import Price
from superset_bot.domain.progress import ProgressSnapshot

WORKTREE = "/srv/wt/codex-task"


def run_sample(name: str, *, cwd: str | None = WORKTREE,
               carried: Mapping[str, Any] | None = None) -> tuple[list[AgentEvent], Progress]:
    return agentsamples.run_sample("codex-json", name, cwd=cwd, carried=carried)


def texts(events: list[AgentEvent], kind: str) -> list[str]:
    return [e.text for e in events if e.kind == kind]


def assert_no_raw_output(events: list[AgentEvent]) -> None:
    for event in events:
        assert not event.text.startswith("{"), event
        assert "Reading additional input" not in event.text and "PATH aliases" not in event.text
        assert "<unknown>" not in event.text and "backtrace" not in event.text.lower()


def test_first_run_shows_actions_with_worktree_paths_and_tokens() -> None:
    events, progress = run_sample("codex_first.jsonl")
    assert events[0].kind == "session" and events[0].session_id
    assert [(e.tool, e.action) for e in events if e.kind == "tool"] == [
        ("file_change", "Editing hello.txt"),  # absolute path in the output, relative here
        ("command_execution", "Running cat hello.txt"),  # /bin/bash -lc '...' unwrapped
        ("command_execution", "Running ls no-such-file"),
    ]
    assert texts(events, "line") == ["Exit 2: ls no-such-file"]
    assert texts(events, "text") == ["(Writing the greeting file)", "Wrote hello.txt and checked it."]
    result = events[-1]
    assert result.kind == "result" and not result.is_error
    assert result.carry == {CARRY_IN: 5400, CARRY_OUT: 110, CARRY_CACHED: 0}
    assert (progress.tokens_in, progress.tokens_out) == (5400, 110)
    assert progress.cost_usd is None  # codex reports no cost
    assert progress.final_text == "Wrote hello.txt and checked it."
    assert progress.session_id == events[0].session_id
    assert progress.carry == {CARRY_IN: 5400, CARRY_OUT: 110, CARRY_CACHED: 0}
    assert_no_raw_output(events)


def test_resumed_run_reports_its_own_tokens_not_the_threads() -> None:
    _, first = run_sample("codex_first.jsonl")
    events, progress = run_sample("codex_resume.jsonl", carried=first.carry)
    assert events[0].text == "Session resumed"
    assert [e.action for e in events if e.kind == "tool"] == ["Editing hello.txt"]
    # the thread's totals are 9500 in, 150 out; 5400 / 110 of them were the first run's
    assert (progress.tokens_in, progress.tokens_out) == (4100, 40)
    assert progress.carry == {CARRY_IN: 9500, CARRY_OUT: 150, CARRY_CACHED: 0}
    assert progress.final_text == "Updated hello.txt."


def test_resumed_run_without_carried_totals_reports_the_thread_totals() -> None:
    _, progress = run_sample("codex_resume.jsonl")
    assert (progress.tokens_in, progress.tokens_out) == (9500, 150)


def test_failed_resumed_run_hands_the_earlier_totals_on() -> None:
    carried = {CARRY_IN: 5400, CARRY_OUT: 110, CARRY_CACHED: 0}
    events, progress = run_sample("codex_http500.jsonl", carried=carried)
    assert progress.carry == carried  # a later follow-up still subtracts the right base
    assert progress.is_error


def test_sandbox_rejections_are_denials_that_say_how_to_grant_them() -> None:
    events, progress = run_sample("codex_denied.jsonl")
    patch, command = [e for e in events if e.kind == "denied"]
    # the patch: only a stderr log line tells, no JSON item
    assert patch.denied == "apply_patch: writing outside of the project"
    assert patch.text.startswith("denied: a patch writing outside of the project was rejected by the sandbox")
    assert '"writable"' in patch.text and "agent.permissions" in patch.text and "danger-full-access" in patch.text
    assert "ERROR" not in patch.text and "2026-" not in patch.text
    # the command: an item that failed on the read-only file system
    assert command.denied == "command: sleep 0.5; touch /srv/tmp/outside/escape2.txt"
    assert command.text.startswith("denied: `sleep 0.5; touch /srv/tmp/outside/escape2.txt` could not write "
                                   "outside the sandbox's writable directories (Read-only file system)")
    assert '"writable"' in command.text
    assert "Exit 1: sleep 0.5; touch /srv/tmp/outside/escape2.txt" in texts(events, "line")
    assert progress.denials == [patch.text, command.text]
    assert not progress.is_error  # the run itself went on and finished
    assert_no_raw_output(events)


def test_command_failing_on_a_read_only_file_system_is_a_denial() -> None:
    # Codex prints such an item when the command's failure is not taken for a sandbox denial
    item = {"id": "item_0", "type": "command_execution",
            "command": "/bin/bash -lc 'touch /srv/repo/.git/hooks/post-merge'",
            "aggregated_output": "touch: cannot touch '/srv/repo/.git/hooks/post-merge': Read-only file system\n",
            "exit_code": 1, "status": "failed"}
    parse = make_parser("codex-json", cwd=WORKTREE)
    events = parse(json.dumps({"type": "item.completed", "item": item}))
    assert [e.kind for e in events] == ["tool", "line", "denied"]
    assert events[1].text == "Exit 1: touch /srv/repo/.git/hooks/post-merge"
    assert events[2].text.startswith("denied: `touch /srv/repo/.git/hooks/post-merge` could not write outside")
    assert '"writable"' in events[2].text


def test_bad_key_is_fatal_with_the_status() -> None:
    events, progress = run_sample("codex_auth.jsonl")
    fatal = [e for e in events if e.fatal]
    assert len(fatal) == 1 and fatal[0].api_status == 401
    assert "refused Codex's credentials" in fatal[0].text and "401 Unauthorized" in fatal[0].text
    assert "url:" not in fatal[0].text
    result = events[-1]
    assert result.kind == "result" and result.is_error and result.api_status == 401
    assert result.text == ("Failed: model API error 401 Unauthorized: Incorrect API key provided. "
                           "You can find your API key at https://platform.openai.com/account/api-keys.")
    assert progress.fatal and progress.is_error and "401" in (progress.error or "")
    assert_no_raw_output(events)


def test_retries_read_as_api_errors_with_the_attempt() -> None:
    events, progress = run_sample("codex_retry.jsonl")
    assert texts(events, "retry") == ["API error 401, retry 1/2", "API error 401, retry 2/2"]
    assert [e.api_status for e in events if e.kind == "retry"] == [401, 401]
    assert len([e for e in events if e.fatal]) == 1  # stop at the first refusal, say it once
    assert events.index(next(e for e in events if e.fatal)) == 2  # right after the first retry
    assert progress.is_error


def test_http_500_fails_plainly_with_the_status() -> None:
    events, progress = run_sample("codex_http500.jsonl")
    # Codex words a 500 from the model API as "experiencing high demand" and drops the status
    result = events[-1]
    assert result.kind == "result" and result.is_error and result.api_status == 500
    assert result.text.startswith("Failed: model API error 500: We’re currently experiencing high demand")
    assert not [e for e in events if e.fatal]  # a 500 may pass; only refused credentials are fatal
    assert progress.error == result.text
    assert_no_raw_output(events)


def test_resuming_an_unknown_session_is_one_clear_line() -> None:
    events, progress = run_sample("codex_no_rollout.jsonl")
    assert [(e.kind, e.is_error) for e in events] == [("result", True)]
    assert events[0].text == ("Failed: Codex cannot resume session 00000000-0000-0000-0000-000000000007: it has "
                              "no record of it (no rollout found in its CODEX_HOME); spawn a new task")
    assert progress.is_error and progress.error == events[0].text
    assert "<unknown>" in (SAMPLES / "codex_no_rollout.jsonl").read_text()  # the frames were there


def test_api_status_from_codex_wording() -> None:
    assert api_status("unexpected status 401 Unauthorized: bad key, url: http://x/v1/responses") == 401
    assert api_status("exceeded retry limit, last status: 429 Too Many Requests") == 429
    assert api_status("We’re currently experiencing high demand, which may cause temporary errors.") == 500
    assert api_status("stream disconnected before completion") is None


def test_hand_made_sample_covers_the_other_item_types() -> None:
    events, progress = run_sample("codex_exec.jsonl", cwd="/srv/wt/task-8")
    assert events[0].kind == "session" and events[0].session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    tools = [(e.tool, e.action) for e in events if e.kind == "tool"]
    assert tools == [
        ("command_execution", 'Running rg -n "def test_login" tests'),  # bash -lc unwrapped
        ("todo_list", "Updating the plan"),  # started + updated: counted once
        ("file_change", "Editing src/api.py, tests/test_auth.py, tests/conftest.py"),
        ("command_execution", "Running pytest -x tests/test_auth.py"),
        ("mcp_tool_call", "Using github: search_issues"),
        ("web_search", "Searching the web for 'pytest freezegun session expiry'"),
    ]
    lines = texts(events, "line")
    assert "Exit 1: pytest -x tests/test_auth.py" in lines
    assert '{"not json at all, truncated' in lines  # malformed: kept as text
    assert "[codex event telemetry.flush (count)]" in lines  # unknown type: one short line, no raw JSON
    assert texts(events, "retry") == ["API error, retry 1/5"]  # "Reconnecting... 1/5"
    assert [e.is_error for e in events if e.kind == "error"] == [False]  # an item error is not the run's
    assert texts(events, "text") == [
        "(Locating the flaky login test)",
        "Fixed the flaky login test.",
        "Sessions no longer expire mid-test.",
    ]
    result = events[-1]
    assert result.kind == "result" and not result.is_error
    assert result.final_text == "Fixed the flaky login test.\nSessions no longer expire mid-test."
    assert progress.tools_used == 6
    assert (progress.tokens_in, progress.tokens_out) == (24763, 122)
    assert progress.phase == "finishing"


def test_unknown_items_and_events_are_summarised_never_raw() -> None:
    parse = make_parser("codex-json")
    secretish = {"type": "item.completed", "item": {"id": "x", "type": "collab_tool_call", "payload": "s" * 5000}}
    (event,) = parse(json.dumps(secretish))
    assert event.kind == "line" and event.text == "[codex item collab_tool_call (payload)]"
    (event,) = parse(json.dumps({"type": "thread.compacted", "reason": "x", "tokens": 5}))
    assert event.text == "[codex event thread.compacted (reason, tokens)]"
    (event,) = parse(json.dumps({"no_type": [1, 2]}))
    assert event.text == "[codex event untyped (no_type)]"


def test_turn_failed_and_list_command() -> None:
    parse = make_parser("codex-json")
    started = {
        "type": "item.started",
        "item": {"id": "i", "type": "command_execution", "command": ["bash", "-lc", "make test"]},
    }
    (tool,) = parse(json.dumps(started))
    assert tool.action == "Running make test"
    (failed,) = parse(json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected"}}))
    assert failed.kind == "result" and failed.is_error and failed.text == "Failed: stream disconnected"
    assert failed.api_status is None


def test_other_codex_stderr_lines() -> None:
    parse = make_parser("codex-json")
    (line,) = parse("2026-12-01T19:56:13.511650Z  WARN codex_core::config: ignoring unknown key foo")
    assert line.kind == "line" and line.text == "codex warn: ignoring unknown key foo"
    assert parse("2026-12-01T19:56:13.511650Z  INFO codex_core::shell_snapshot: created") == []
    (failed,) = parse("Error: error loading config.toml: invalid type: string, expected a boolean")
    assert failed.kind == "result" and failed.is_error and "error loading config.toml" in failed.text


def test_legacy_shapes_do_not_crash() -> None:
    events, progress = run_sample("codex_legacy.jsonl", cwd=None)
    assert [e.kind for e in events] == ["session", "tool", "text", "result"]
    assert events[1].action == "Running pytest -q"
    assert progress.final_text == "All tests pass."


# ---------------------------------------------------------------------- cost estimated from a list price

GPT5_CODEX = Price("gpt-5-codex", 1.25, 0.125, 10.0)


def completed(tokens_in: int, cached: int, tokens_out: int) -> str:
    usage = {"input_tokens": tokens_in, "cached_input_tokens": cached, "output_tokens": tokens_out,
             "reasoning_output_tokens": 0}
    return json.dumps({"type": "turn.completed", "usage": usage})


def test_with_the_models_price_the_cost_is_estimated_and_marked_so() -> None:
    events, progress = agentsamples.run_sample("codex-json", "codex_exec.jsonl", cwd="/srv/wt/task-8")
    assert progress.cost_usd is None and progress.cost_estimated_from is None  # no price: tokens alone
    parse = make_parser("codex-json", cwd="/srv/wt/task-8", price=GPT5_CODEX)
    progress = Progress()
    for line in (SAMPLES / "codex_exec.jsonl").read_text().splitlines():
        for event in parse(line):
            progress.apply(event)
    # 24,763 in, 24,448 of them cached, 122 out
    expected = ((24_763 - 24_448) * 1.25 + 24_448 * 0.125 + 122 * 10.0) / 1e6
    assert progress.cost_usd == pytest.approx(expected)
    assert progress.cost_estimated_from == "gpt-5-codex"
    snapshot = progress.snapshot()
    assert snapshot.cost_estimated and snapshot.to_dict()["cost_estimated_from"] == "gpt-5-codex"
    assert ProgressSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot
    assert Progress.from_snapshot(snapshot).cost_estimated_from == "gpt-5-codex"


def test_a_resumed_run_is_priced_by_its_own_tokens_cached_ones_included() -> None:
    parse = make_parser("codex-json", carried={CARRY_IN: 10_000, CARRY_OUT: 100, CARRY_CACHED: 6_000},
                        price=GPT5_CODEX)
    (result,) = parse(completed(25_000, 18_000, 400))
    # this run: 15,000 in of which 12,000 cached, 300 out
    assert (result.tokens_in, result.tokens_out) == (15_000, 300)
    assert result.cost_usd == pytest.approx((3_000 * 1.25 + 12_000 * 0.125 + 300 * 10.0) / 1e6)
    assert result.cost_estimated_from == "gpt-5-codex"
    assert result.carry == {CARRY_IN: 25_000, CARRY_OUT: 400, CARRY_CACHED: 18_000}


def test_output_starts_over_with_the_input() -> None:
    parse = make_parser("codex-json", carried={CARRY_IN: 250_000, CARRY_OUT: 9_000, CARRY_CACHED: 0},
                        price=GPT5_CODEX)
    (result,) = parse(completed(200_000, 0, 12_000))  # the thread's counts started over
    assert (result.tokens_in, result.tokens_out) == (200_000, 12_000), "one reset for the whole thread"


def test_thread_counts_that_started_over_are_priced_whole() -> None:
    parse = make_parser("codex-json", carried={CARRY_IN: 50_000, CARRY_OUT: 900, CARRY_CACHED: 40_000},
                        price=GPT5_CODEX)
    (result,) = parse(completed(2_000, 1_000, 50))
    assert (result.tokens_in, result.tokens_out) == (2_000, 50)
    assert result.cost_usd == pytest.approx((1_000 * 1.25 + 1_000 * 0.125 + 50 * 10.0) / 1e6)


def test_an_older_carry_without_cached_totals_prices_the_run_as_uncached() -> None:
    parse = make_parser("codex-json", carried={CARRY_IN: 10_000, CARRY_OUT: 100}, price=GPT5_CODEX)
    (result,) = parse(completed(12_000, 11_000, 150))  # 11,000 cached over the thread; this run's share unknown
    assert result.cost_usd == pytest.approx((2_000 * 1.25 + 50 * 10.0) / 1e6), "never an under-estimate"
    assert result.carry == {CARRY_IN: 12_000, CARRY_OUT: 150, CARRY_CACHED: 11_000}


def test_a_failed_turn_keeps_the_estimate_of_the_tokens_it_reported_and_none_without() -> None:
    parse = make_parser("codex-json", price=GPT5_CODEX)
    (failed,) = parse(json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected"}}))
    assert failed.cost_usd is None and failed.cost_estimated_from is None
    (done,) = parse(completed(1_000, 0, 10))
    (failed,) = parse(json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected"}}))
    assert failed.cost_usd == done.cost_usd and failed.cost_estimated_from == "gpt-5-codex"


def test_agents_that_report_their_cost_ignore_a_price() -> None:
    _, priced = agentsamples.run_sample("claude-stream-json", "claude_first.jsonl")
    parse = make_parser("claude-stream-json", price=GPT5_CODEX)
    progress = Progress()
    for line in (SAMPLES / "claude_first.jsonl").read_text().splitlines(keepends=True):
        for event in parse(line):
            progress.apply(event)
    assert progress.cost_usd == priced.cost_usd and progress.cost_estimated_from is None
