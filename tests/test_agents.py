"""Agent output parsers on recorded samples and hostile input, Progress, and the demo agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.agents import FORMATS, AgentEvent, Progress, make_parser

SAMPLES = Path(__file__).parent / "samples"
PROJECT_ROOT = Path(__file__).parent.parent


def run_sample(fmt: str, name: str, cwd: str | None = None) -> tuple[list[AgentEvent], Progress]:
    parse = make_parser(fmt, cwd=cwd)
    progress = Progress()
    events: list[AgentEvent] = []
    for line in (SAMPLES / name).read_text().splitlines(keepends=True):
        for event in parse(line):
            events.append(event)
            progress.apply(event)
    return events, progress


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(ValueError) as err:
        make_parser("json-lines")
    assert "json-lines" in str(err.value)
    for fmt in FORMATS:
        assert fmt in str(err.value)


def test_plain_lines_strip_colours_and_skip_blanks() -> None:
    events, progress = run_sample("plain", "plain.txt")
    assert [e.kind for e in events] == ["line"] * 5
    assert events[2].text == "Applied edit to src/api.py"
    assert progress.phase == "working"
    assert progress.tools_used == 0
    assert progress.lines_seen == 5
    assert list(progress.tail)[-1].startswith("Tokens: 12k sent")


def test_claude_stream_sample() -> None:
    events, progress = run_sample("claude-stream-json", "claude_stream.jsonl")
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
    assert any('"rate_limit_event"' in line for line in lines)  # unknown type degrades to a line

    # usage increments (one message id repeated over two lines is counted once) add up to the result
    usage = [e for e in events if e.kind == "usage"]
    assert sum(e.tokens_in or 0 for e in usage) == 27 + 2000 + 62400
    assert sum(e.tokens_out or 0 for e in usage) == 535

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
    progress.mark_done()
    assert progress.phase == "done"
    json.dumps(progress.snapshot())


def test_claude_action_follows_latest_tool() -> None:
    parse = make_parser("claude-stream-json", cwd="/wt")
    progress = Progress()
    line = {
        "type": "assistant",
        "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "x" * 200}}]},
    }
    for event in parse(json.dumps(line)):
        progress.apply(event)
    assert progress.action == "Running " + "x" * 59 + "…"
    line["message"]["content"] = [  # type: ignore[index]
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


def test_claude_error_result() -> None:
    events, progress = run_sample("claude-stream-json", "claude_error.jsonl")
    assert [e.action for e in events if e.kind == "tool"] == ["Delegating: Survey the test suite"]
    result = events[-1]
    assert result.kind == "result" and result.is_error
    assert result.text.startswith("Failed (error_max_turns)")
    assert progress.is_error and progress.cost_usd == pytest.approx(0.02)


def test_claude_long_text_is_bounded() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}})
    events = make_parser("claude-stream-json")(line)
    assert 1 < len(events) <= 6
    assert events[-1].text.endswith("…")
    big = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "y" * 100_000}]}})
    (event,) = make_parser("claude-stream-json")(big)
    assert len(event.text) <= 500


def test_codex_exec_sample() -> None:
    events, progress = run_sample("codex-json", "codex_exec.jsonl", cwd="/srv/wt/task-8")
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
    lines = [e.text for e in events if e.kind == "line"]
    assert "Exit 1: pytest -x tests/test_auth.py" in lines
    assert '{"not json at all, truncated' in lines  # malformed
    assert '{"type":"telemetry.flush","count":3}' in lines  # unknown type
    errors = [e for e in events if e.kind == "error"]
    assert [e.is_error for e in errors] == [False, True]  # item error is non-fatal, stream error is
    assert [e.text for e in events if e.kind == "text"] == [
        "(Locating the flaky login test)",
        "Fixed the flaky login test.",
        "Sessions no longer expire mid-test.",
    ]
    result = events[-1]
    assert result.kind == "result" and not result.is_error
    assert result.final_text == "Fixed the flaky login test.\nSessions no longer expire mid-test."
    assert progress.tools_used == 6
    assert (progress.tokens_in, progress.tokens_out) == (24763, 122)
    assert progress.cost_usd is None  # codex does not report cost
    assert progress.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert progress.phase == "finishing"


def test_codex_turn_failed_and_list_command() -> None:
    parse = make_parser("codex-json")
    started = {
        "type": "item.started",
        "item": {"id": "i", "type": "command_execution", "command": ["bash", "-lc", "make test"]},
    }
    (tool,) = parse(json.dumps(started))
    assert tool.action == "Running make test"
    (failed,) = parse(json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected"}}))
    assert failed.kind == "result" and failed.is_error and "stream disconnected" in failed.text


def test_codex_legacy_shapes_do_not_crash() -> None:
    events, progress = run_sample("codex-json", "codex_legacy.jsonl")
    assert [e.kind for e in events] == ["session", "tool", "text", "result"]
    assert events[1].action == "Running pytest -q"
    assert progress.final_text == "All tests pass."


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "null",
        "[]",
        "42",
        '"str"',
        "{",
        '{"type": 5}',
        '{"type": "assistant", "message": []}',
        '{"type": "result", "usage": "x", "total_cost_usd": NaN, "duration_ms": Infinity}',
        '{"type": "item.completed", "item": {"type": "file_change", "changes": [1, null, {"path": 3}]}}',
        "[" * 100_000,
        "\x1b[31m" + "z" * 5_000_000,
        "\ud800 lone surrogate",
    ],
)
def test_hostile_lines_never_raise(fmt: str, line: str) -> None:
    events = make_parser(fmt)(line)
    for event in events:
        assert event.kind in ("line", "text", "tool", "result", "session", "error", "usage")
        assert len(event.text) <= 500
    progress = Progress()
    for event in events:
        progress.apply(event)
    json.dumps(progress.snapshot(), allow_nan=False)


def test_non_object_json_degrades_to_line() -> None:
    for fmt in ("claude-stream-json", "codex-json"):
        assert make_parser(fmt)("[1, 2]") == [AgentEvent(kind="line", text="[1, 2]")]
        assert make_parser(fmt)("{broken") == [AgentEvent(kind="line", text="{broken")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_TYPES = [
    "system",
    "assistant",
    "user",
    "result",
    "stream_event",
    "thread.started",
    "turn.started",
    "turn.completed",
    "turn.failed",
    "error",
    "item.started",
    "item.updated",
    "item.completed",
]
ITEM_TYPES = [
    "agent_message",
    "reasoning",
    "command_execution",
    "file_change",
    "mcp_tool_call",
    "web_search",
    "todo_list",
    "error",
    "mystery",
]
shaped_events = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES)},
    optional={
        "subtype": st.sampled_from(["init", "success", "error_max_turns"]) | json_values,
        "message": st.fixed_dictionaries(
            {},
            optional={
                "id": st.sampled_from(["m1", "m2"]) | json_values,
                "content": st.lists(
                    st.fixed_dictionaries(
                        {"type": st.sampled_from(["text", "tool_use", "tool_result"]) | json_values},
                        optional={
                            "text": json_values,
                            "name": json_values,
                            "input": json_values,
                            "is_error": json_values,
                            "content": json_values,
                        },
                    ),
                    max_size=3,
                )
                | json_values,
                "usage": json_values,
            },
        )
        | json_values,
        "item": st.fixed_dictionaries(
            {"type": st.sampled_from(ITEM_TYPES) | json_values},
            optional={
                "id": json_values,
                "text": json_values,
                "command": json_values,
                "changes": json_values,
                "exit_code": json_values,
                "status": json_values,
            },
        )
        | json_values,
        "usage": json_values,
        "result": json_values,
        "total_cost_usd": json_values,
        "duration_ms": json_values,
        "error": json_values,
        "msg": json_values,
        "session_id": json_values,
        "thread_id": json_values,
    },
)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(max_size=200), max_size=5))
def test_arbitrary_text_never_raises(fmt: str, lines: list[str]) -> None:
    parse = make_parser(fmt)
    progress = Progress(tail_lines=5)
    for line in lines:
        for event in parse(line):
            progress.apply(event)
    json.dumps(progress.snapshot())


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(values=st.lists(json_values | shaped_events, min_size=1, max_size=5))
def test_arbitrary_json_never_raises(fmt: str, values: list[object]) -> None:
    parse = make_parser(fmt)
    progress = Progress()
    for value in values:
        for event in parse(json.dumps(value)):
            assert isinstance(event, AgentEvent)
            progress.apply(event)
    snap = progress.snapshot()
    json.dumps(snap)
    assert Progress.from_snapshot(snap).snapshot() == snap


def test_progress_tail_stays_bounded() -> None:
    progress = Progress(tail_lines=20, line_chars=300)
    parse = make_parser("plain")
    for i in range(100_000):
        for event in parse(f"line {i} " + "x" * (i % 700)):
            progress.apply(event)
    assert len(progress.tail) == 20
    assert all(len(line) <= 300 for line in progress.tail)
    assert progress.lines_seen == 100_000
    assert progress.tail[-1].startswith("line 99999 ")


def test_progress_snapshot_round_trip() -> None:
    _, progress = run_sample("claude-stream-json", "claude_stream.jsonl")
    snap = progress.snapshot()
    restored = Progress.from_snapshot(json.loads(json.dumps(snap)))
    assert restored.snapshot() == snap
    assert Progress.from_snapshot({"phase": "nonsense", "tail": [1, "ok"], "tokens_in": "7"}).snapshot()[
        "tail"
    ] == ["ok"]


# --------------------------------------------------------------------------- demo agent


def run_demo(repo: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPERSET_DEMO_DELAY": "0", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot.demo_agent", prompt],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_agent_commits_and_leaves_a_change(make_repo: RepoFactory) -> None:
    repo = make_repo("demo")
    prompt = 'add a greeting; $(touch pwned) `rm -rf x` "quoted"'
    out = run_demo(repo, prompt)
    assert out.returncode == 0, out.stderr
    assert "Done: committed SUPERSET_DEMO.md" in out.stdout
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "show", "--name-only", "--format=", "HEAD") == "SUPERSET_DEMO.md"
    assert prompt in (repo / "SUPERSET_DEMO.md").read_text()  # the prompt arrives verbatim
    assert not (repo / "pwned").exists()  # and never went through a shell
    assert git(repo, "status", "--porcelain") == "?? SUPERSET_DEMO_NOTES.md"
    # its output is plain progress lines
    events = [e for line in out.stdout.splitlines() for e in make_parser("plain")(line)]
    assert len(events) >= 5


def test_demo_agent_fails_on_request(make_repo: RepoFactory) -> None:
    repo = make_repo("demo")
    out = run_demo(repo, "please FAIL loudly")
    assert out.returncode == 1
    assert "Error:" in out.stdout
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    assert git(repo, "status", "--porcelain") == ""


def test_demo_agent_outside_a_repo(tmp_path: Path) -> None:
    out = run_demo(tmp_path, "anything")
    assert out.returncode == 2
    assert "not inside a git work tree" in out.stderr
