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
from support.agentsamples import run_sample

from superset_bot.agents.formats import EVENT_KINDS, FORMATS, AgentEvent, Progress, make_parser
from superset_bot.domain.progress import ProgressSnapshot

PROJECT_ROOT = Path(__file__).parents[2]


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
    parser = make_parser(fmt)
    events = parser(line) + parser.finish()
    for event in events:
        assert event.kind in EVENT_KINDS
        assert len(event.text) <= 500
    progress = Progress()
    for event in events:
        progress.apply(event)
    json.dumps(progress.snapshot().to_dict(), allow_nan=False)


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
    json.dumps(progress.snapshot().to_dict())


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
    stored = json.loads(json.dumps(snap.to_dict()))
    assert ProgressSnapshot.from_dict(stored) == snap
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
    restored = Progress.from_snapshot(ProgressSnapshot.from_dict(json.loads(json.dumps(snap.to_dict()))))
    assert restored.snapshot() == snap
    odd = Progress.from_snapshot(ProgressSnapshot.from_dict({"phase": "nonsense", "tail": [1, "ok"], "tokens_in": "7"}))
    assert (odd.phase, list(odd.tail), odd.tokens_in) == ("starting", ["ok"], 0)


# --------------------------------------------------------------------------- demo agent


def run_demo(repo: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPERSET_DEMO_DELAY": "0", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "superset_bot.agents.demo", prompt],
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
