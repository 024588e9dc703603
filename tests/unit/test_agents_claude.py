"""The Claude Code stream-json parser over output recorded from the real CLI (tests/samples/claude_*).

claude_first / resume / denied / planning / auth / http500 come from `realagents.claude.record`
(Claude Code 2.1.197 against the fake Anthropic API, worktree shown as /srv/wt/claude-task);
claude_stream / claude_error are older hand-written shapes the parser still reads.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import agentsamples
from support.agentsamples import SAMPLES

from superset_bot.agents.formats import AgentEvent, Progress, make_parser
from superset_bot.agents.formats.claude import command_prefix

WORKTREE = "/srv/wt/claude-task"
GRANT = "in the preset's agent.permissions"


def run_sample(name: str, cwd: str | None = WORKTREE) -> tuple[list[AgentEvent], Progress]:
    return agentsamples.run_sample("claude-stream-json", name, cwd=cwd)


def parse_lines(*objs: dict[str, Any], cwd: str | None = WORKTREE) -> list[AgentEvent]:
    parse = make_parser("claude-stream-json", cwd=cwd)
    return [event for obj in objs for event in parse(json.dumps(obj))]


def recorded_result(name: str) -> dict[str, Any]:
    lines = (SAMPLES / name).read_text().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["type"] == "result"
    return result


# --------------------------------------------------------------------------- recorded runs


def test_first_run_actions_tokens_and_cost() -> None:
    events, progress = run_sample("claude_first.jsonl")
    assert events[0].kind == "session" and events[0].text.startswith("Session started (model claude-")
    assert [(e.tool, e.action) for e in events if e.kind == "tool"] == [
        ("Write", "Writing hello.txt"),  # the absolute path, relative to the worktree
        ("Bash", "Running make test"),
    ]
    assert [e.text for e in events if e.kind == "text"] == ["Wrote hello.txt; make test passes."]
    # running counts: input per message (its message_start figures are final), no placeholder output
    usage = [e for e in events if e.kind == "usage"]
    assert [e.tokens_in for e in usage] == [1200 + 300 + 5000, 1300 + 6000, 1400 + 6200]
    assert all(e.tokens_out == 0 for e in usage)
    # the totals: modelUsage summed over models, total_cost_usd
    result = recorded_result("claude_first.jsonl")
    models = result["modelUsage"].values()
    assert progress.tokens_in == sum(m["inputTokens"] + m["cacheReadInputTokens"] + m["cacheCreationInputTokens"]
                                     for m in models) == 21400
    assert progress.tokens_out == sum(m["outputTokens"] for m in models) == 90
    assert progress.cost_usd == pytest.approx(result["total_cost_usd"]) and progress.cost_usd > 0
    assert progress.final_text == "Wrote hello.txt; make test passes."
    assert events[-1].text.startswith("Done in ") and not progress.is_error
    assert progress.denials == [] and progress.session_id == result["session_id"]


def test_resumed_run_keeps_the_session_and_counts_only_itself() -> None:
    first, _ = run_sample("claude_first.jsonl")
    events, progress = run_sample("claude_resume.jsonl")
    assert progress.session_id == first[0].session_id
    assert [e.action for e in events if e.kind == "tool"] == ["Writing bye.txt"]
    assert (progress.tokens_in, progress.tokens_out) == (2000 + 2100, 25 + 15)


def test_denied_command_says_how_to_grant_it() -> None:
    events, progress = run_sample("claude_denied.jsonl")
    denied = [e for e in events if e.kind == "denied"]
    said = [
        f'denied: `curl -s https://example.com/install.sh` needs approval; grant it with "commands": ["curl"] {GRANT}',
        f'denied: writing /srv/tmp/outside/escape.txt (outside the worktree); grant it with '
        f'"writable": ["/srv/tmp/outside"] {GRANT}',
    ]
    # each reported once, when the tool result said so, not again from result.permission_denials
    assert [(e.denied, e.text) for e in denied] == [("Bash: curl -s https://example.com/install.sh", said[0]),
                                                    ("Write: /srv/tmp/outside/escape.txt", said[1])]
    assert [d["tool_name"] for d in recorded_result("claude_denied.jsonl")["permission_denials"]] == ["Bash", "Write"]
    assert progress.denials == said
    assert [e.action for e in events if e.kind == "tool"][-1] == "Writing notes.txt"
    assert not progress.is_error and "Tool error" not in " ".join(progress.tail)


def test_planning_subagent_and_write_outside_the_worktree() -> None:
    events, progress = run_sample("claude_planning.jsonl")
    assert [e.action for e in events if e.kind == "tool"] == [
        "Planning: Write the greeting",
        "Planning: task 1 in progress",
        "Writing /srv/tmp/outside/escape.txt",  # outside the worktree: left absolute
        "Running python3 -m pytest -q",
        "Delegating: Survey the tests",
        "Planning: task 1 completed",
    ]
    lines = [e.text for e in events if e.kind == "line"]
    assert "Sub-agent 'Survey the tests' started" in lines
    assert "Sub-agent 'Survey the tests' completed" in lines
    # python3 -m pytest is allowed by the preset: it ran (and failed), which is not a denial
    assert "Tool error: Exit code 1: /usr/bin/python3: No module named pytest" in lines
    assert progress.denials == [
        f'denied: writing /srv/tmp/outside/escape.txt (outside the worktree); grant it with '
        f'"writable": ["/srv/tmp/outside"] {GRANT}'
    ]
    # modelUsage includes the sub-agent's call, which the main stream never shows
    result = recorded_result("claude_planning.jsonl")
    assert progress.tokens_in > result["usage"]["input_tokens"]
    assert progress.tokens_in == sum(m["inputTokens"] for m in result["modelUsage"].values())
    assert all("{" not in line for line in progress.tail)  # nothing shown as raw JSON


def test_auth_failure_is_fatal_at_the_first_retry() -> None:
    events, progress = run_sample("claude_auth.jsonl")
    kinds = [(e.kind, e.text) for e in events if e.kind in ("retry", "error")]
    auth = "the model API refused the credentials (401): check ANTHROPIC_API_KEY or `claude login`"
    assert kinds == [("retry", "API error 401, retry 1/2"), ("error", auth), ("retry", "API error 401, retry 2/2")]
    fatal = [e for e in events if e.fatal]
    assert len(fatal) == 1 and fatal[0].api_status == 401
    assert progress.fatal and progress.is_error
    result = events[-1]
    assert result.kind == "result" and result.is_error and result.api_status == 401
    assert progress.error == f"Failed: {auth}"


def test_http_500_result_names_the_status() -> None:
    events, progress = run_sample("claude_http500.jsonl")
    assert [e.text for e in events if e.kind == "retry"] == ["API error 500, retry 1/1"]
    assert not any(e.fatal for e in events)
    assert progress.is_error and not progress.fatal
    assert progress.error and progress.error.startswith("Failed (API error 500): Internal server error.")


# --------------------------------------------------------------------------- shapes not in the recordings


def test_permission_denials_in_the_result_become_denials() -> None:
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "ok", "permission_denials": [
        {"tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "python3 -m pytest -x tests/a.py"}},
        {"tool_name": "Bash", "tool_use_id": "t2", "tool_input": {"command": "python3 -m pytest -x tests/a.py"}},
        {"tool_name": "Bash", "tool_use_id": "t3", "tool_input": {"command": "npm run build -- --prod"}},
        {"tool_name": "Edit", "tool_use_id": "t4", "tool_input": {"file_path": "/etc/hosts"}},
        {"tool_name": "WebFetch", "tool_use_id": "t5", "tool_input": {"url": "https://example.com"}},
        {"tool_name": "Write", "tool_use_id": "t6", "tool_input": {"file_path": f"{WORKTREE}/.claude/settings.json"}},
    ]}
    events = parse_lines(result)
    assert [e.text for e in events if e.kind == "denied"] == [
        f'denied: `python3 -m pytest -x tests/a.py` needs approval; grant it with "commands": ["python3 -m pytest"] {GRANT}',
        f'denied: `npm run build -- --prod` needs approval; grant it with "commands": ["npm run build"] {GRANT}',
        f'denied: editing /etc/hosts (outside the worktree); grant it with "writable": ["/etc"] {GRANT}',
        f'denied: WebFetch needs approval; grant it with "tools": ["WebFetch"] {GRANT}',
        f'denied: writing .claude/settings.json needs approval; grant it with '
        f'"tools": ["Write(.claude/settings.json)"] {GRANT}',
    ]
    assert events[-1].kind == "result" and not events[-1].is_error


def test_command_prefix() -> None:
    assert command_prefix("python3 -m pytest -q") == "python3 -m pytest"
    assert command_prefix("FOO=1 cargo test --all && echo ok") == "cargo test"
    assert command_prefix("docker compose up -d") == "docker compose up"
    assert command_prefix("./scripts/check.sh --fast") == "./scripts/check.sh"
    assert command_prefix("git -C /x push") == "git"
    assert command_prefix("  ") == ""


def test_output_tokens_count_only_from_a_finished_message() -> None:
    start = {"id": "m1", "stop_reason": None,
             "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}}
    events = parse_lines(
        {"type": "assistant", "message": {**start, "content": [{"type": "text", "text": "a"}]}},
        {"type": "assistant", "message": {**start, "content": [{"type": "tool_use", "name": "Read", "input": {}}]}},
        {"type": "assistant", "message": {**start, "stop_reason": "tool_use",
                                          "usage": {**start["usage"], "output_tokens": 33}}},
    )
    usage = [(e.tokens_in, e.tokens_out) for e in events if e.kind == "usage"]
    assert usage == [(100, 0), (0, 33)]  # the repeated id is counted once; the placeholder 1 never


def test_partial_messages_give_running_output_tokens() -> None:
    start = {"id": "m1", "stop_reason": None, "usage": {"input_tokens": 100, "output_tokens": 1}}
    events = parse_lines(
        {"type": "stream_event", "event": {"type": "message_start", "message": start}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": "o"}}},
        {"type": "assistant", "message": {**start, "content": [{"type": "text", "text": "ok"}]}},
        {"type": "stream_event", "event": {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                           "usage": {"output_tokens": 44}}},
        {"type": "stream_event", "event": {"type": "message_stop"}},
    )
    assert [(e.kind, e.tokens_in, e.tokens_out) for e in events] == [
        ("usage", 100, 0), ("text", None, None), ("usage", 0, 44)]


def test_result_totals_sum_model_usage_over_models() -> None:
    (event,) = parse_lines({"type": "result", "subtype": "success", "is_error": False, "result": "ok",
                            "usage": {"input_tokens": 5, "output_tokens": 5},
                            "modelUsage": {
                                "claude-opus-4-8": {"inputTokens": 100, "outputTokens": 20, "cacheReadInputTokens": 1000,
                                                    "cacheCreationInputTokens": 50, "costUSD": 0.5},
                                "claude-haiku-4-5": {"inputTokens": 30, "outputTokens": 7, "costUSD": 0.01}}})
    assert (event.tokens_in, event.tokens_out) == (1180, 27)
    assert event.cost_usd == pytest.approx(0.51)  # no total_cost_usd: the models' sum


def test_subagent_events_and_task_tools_read_as_sentences() -> None:
    events = parse_lines(
        {"type": "system", "subtype": "task_started", "task_id": "a1", "description": "Survey the tests"},
        {"type": "system", "subtype": "task_progress", "task_id": "a1", "description": "Survey the tests",
         "last_tool_name": "Grep", "usage": {"total_tokens": 5}},
        {"type": "system", "subtype": "task_progress", "task_id": "a1", "summary": "Found 3 test files"},
        {"type": "system", "subtype": "task_updated", "task_id": "a1", "patch": {"status": "failed"}},
        {"type": "system", "subtype": "task_notification", "task_id": "a1", "status": "failed",
         "summary": "Could not read tests/"},
        {"type": "assistant", "parent_tool_use_id": "toolu_1",
         "message": {"content": [{"type": "text", "text": "Looking around"}]}},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "t9", "name": "TaskUpdate", "input": {"taskId": "2", "subject": "Fix it",
                                                                          "status": "completed"}},
            {"type": "tool_use", "id": "t10", "name": "Agent", "input": {"prompt": "look"}},
        ]}},
    )
    assert [e.text for e in events] == [
        "Sub-agent 'Survey the tests' started",
        "Sub-agent 'Survey the tests': using Grep",
        "Sub-agent 'Survey the tests': Found 3 test files",
        "Sub-agent 'Survey the tests': failed",
        "Sub-agent 'Survey the tests' failed: Could not read tests/",
        "(sub-agent) Looking around",
        "Planning: Fix it completed",
        "Delegating: look",
    ]


def test_other_event_types_are_one_short_line_or_nothing() -> None:
    events = parse_lines(
        {"type": "tool_progress", "tool_use_id": "t1", "tool_name": "Bash", "elapsed_time_seconds": 3},
        {"type": "tool_use_summary", "summary": "Ran the tests twice", "preceding_tool_use_ids": ["t1"]},
        {"type": "auth_status", "isAuthenticating": False, "output": [], "error": None},
        {"type": "auth_status", "isAuthenticating": False, "output": [], "error": "token expired"},
        {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}},
        {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning", "resetsAt": 1}},
        {"type": "prompt_suggestion", "suggestion": "run the tests"},
        {"type": "keep_alive"},
        {"type": "system", "subtype": "status", "status": "compacting"},
        {"type": "system", "subtype": "hook_started", "hook_name": "x"},
        {"type": "system", "subtype": "model_fallback", "content": "Switched to Sonnet because Opus is not available"},
        {"type": "system", "subtype": "brand_new_thing", "data": {"deep": [1, 2, 3]}},
        {"type": "conversation_reset"},
        {"type": "totally_new", "payload": {"x": 1}},
    )
    assert [e.text for e in events] == [
        "Summary: Ran the tests twice",
        "Authentication problem: token expired",
        "Rate limit: allowed warning",
        "Switched to Sonnet because Opus is not available",
        "[system: brand_new_thing]",
        "Conversation reset",
        "[claude: totally_new]",
    ]


def test_permission_denied_system_event_uses_the_tool_call() -> None:
    events = parse_lines(
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "make deploy"}}]}},
        {"type": "system", "subtype": "permission_denied", "tool_name": "Bash", "tool_use_id": "t1",
         "message": "This command requires approval"},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                                  "content": "This command requires approval"}]}},
    )
    denied = [e.text for e in events if e.kind == "denied"]
    assert denied == [f'denied: `make deploy` needs approval; grant it with "commands": ["make"] {GRANT}']


def test_bash_blocked_outside_the_worktree_suggests_writable() -> None:
    events = parse_lines(
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "touch /tmp/x"}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                                  "content": "touch in '/tmp/x' was blocked. For security, Claude "
                                                             "Code may only create or modify files in the allowed "
                                                             "working directories for this session: '/wt'."}]}},
    )
    (denied,) = [e for e in events if e.kind == "denied"]
    assert denied.text == f'denied: `touch /tmp/x` writes outside the worktree; grant a directory with "writable": ["/tmp"] {GRANT}'


# --------------------------------------------------------------------------- older shapes, hostile input


def test_claude_stream_sample() -> None:
    events, progress = run_sample("claude_stream.jsonl", cwd=None)
    session = "3f6c2a9e-1b7d-4c2e-9a51-7d0e8c4b2f10"
    assert events[0] == AgentEvent(
        kind="session",
        text="Session started (model claude-sonnet-4-5-20250929, 12 tools)",
        session_id=session,
    )
    tools = [(e.tool, e.action) for e in events if e.kind == "tool"]
    assert tools == [
        ("TodoWrite", "Updating the plan"),
        ("Grep", "Searching for 'def test_login'"),
        ("Read", "Reading tests/test_auth.py"),  # relative to the init event's cwd
        ("Edit", "Editing src/api.py"),
        ("MultiEdit", "Editing tests/test_auth.py"),
        ("Write", "Writing tests/conftest.py"),
        ("Bash", "Running python -m pytest -x tests/test_auth.py -q 2>&1 | tail -20"),
        ("mcp__github__create_issue", "Using github: create_issue"),
    ]
    texts = [e.text for e in events if e.kind == "text"]
    assert texts[:2] == ["I'll start by looking at the failing login test.", "Then I will fix it."]
    # the thinking block and the stream_event partial are not shown
    assert not any("sleep races" in e.text or "The test sle" == e.text for e in events)
    lines = [e.text for e in events if e.kind == "line"]
    assert lines[0].startswith("Tool error: <tool_use_error>String to replace not found")
    assert "this line is not JSON: Claude printed a warning on stdout" in lines  # malformed line
    assert not any("rate_limit_event" in line for line in lines)  # an "allowed" rate limit is noise

    # input counted once per message id; output only from messages that carry a stop_reason
    usage = [e for e in events if e.kind == "usage"]
    assert sum(e.tokens_in or 0 for e in usage) == 27 + 2000 + 62400
    assert sum(e.tokens_out or 0 for e in usage) == 535 - 60  # msg_01A's stream-start figures are not counted

    result = events[-1]
    assert result.kind == "result" and not result.is_error
    assert result.text == "Done in 48.2 s, 7 turns, $0.1834"
    assert result.final_text is not None and result.final_text.startswith("Fixed the flaky login test")
    assert result.tokens_in == 64427 and result.tokens_out == 535

    assert progress.phase == "finishing"
    assert progress.tools_used == 8
    assert progress.tokens_in == 64427 and progress.tokens_out == 535
    assert progress.cost_usd == pytest.approx(0.1834)
    assert progress.duration_s == pytest.approx(48.21)
    assert progress.session_id == session
    assert progress.final_text == result.final_text
    assert progress.action is None  # cleared by the result


def test_claude_error_result() -> None:
    events, progress = run_sample("claude_error.jsonl")
    assert [e.action for e in events if e.kind == "tool"] == ["Delegating: Survey the test suite"]
    result = events[-1]
    assert result.kind == "result" and result.is_error
    assert result.text == "Failed (error_max_turns)"
    assert progress.is_error and progress.cost_usd == pytest.approx(0.02)


def test_claude_action_follows_latest_tool() -> None:
    parse = make_parser("claude-stream-json", cwd="/wt")
    progress = Progress()
    line: dict[str, Any] = {
        "type": "assistant",
        "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "x" * 200}}]},
    }
    for event in parse(json.dumps(line)):
        progress.apply(event)
    assert progress.action == "Running " + "x" * 59 + "…"
    line["message"]["content"] = [
        {"type": "tool_use", "name": "NotebookEdit", "input": {"notebook_path": "/wt/nb/a.ipynb"}},
        {"type": "tool_use", "name": "Glob", "input": {"pattern": "**/*.py"}},
        {"type": "tool_use", "name": "WebFetch", "input": {"url": "https://example.com/doc"}},
        {"type": "tool_use", "name": "WebSearch", "input": {"query": "asyncio"}},
        {"type": "tool_use", "name": "Frobnicate", "input": {}},
        {"type": "tool_use", "name": "Edit", "input": {"file_path": "/elsewhere/x.py"}},
    ]
    actions = [e.action for e in parse(json.dumps(line))]
    assert actions == [
        "Editing nb/a.ipynb",
        "Searching for '**/*.py'",
        "Fetching https://example.com/doc",
        "Searching the web for 'asyncio'",
        "Using Frobnicate",
        "Editing /elsewhere/x.py",  # outside the worktree: left absolute
    ]


def test_claude_long_text_is_bounded() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}})
    events = make_parser("claude-stream-json")(line)
    assert 1 < len(events) <= 6
    assert events[-1].text.endswith("…")
    big = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "y" * 100_000}]}})
    (event,) = make_parser("claude-stream-json")(big)
    assert len(event.text) <= 500
    huge = {"type": "result", "is_error": False, "permission_denials": [
        {"tool_name": "Bash", "tool_input": {"command": f"cmd{i} " + "z" * 5000}} for i in range(2000)]}
    events = make_parser("claude-stream-json")(json.dumps(huge))
    assert all(len(e.text) <= 500 for e in events)
