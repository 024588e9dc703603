"""agent.permissions and never_commit: validated like every preset field, turned into each CLI's flags."""

from __future__ import annotations

import pytest

from superset_bot.presets import PresetError, agent_argv, parse_preset, permission_args

PATHS = {"worktree": "/w/t1", "git_dir": "/r/.git/worktrees/t1", "git_common_dir": "/r/.git"}


def claude(permissions: object, **extra: object) -> dict[str, object]:
    return {"agent": {"command": ["claude", "-p", "{permissions}", "--", "{prompt}"], "format": "claude-stream-json",
                      "permissions": permissions}, **extra}


def codex(permissions: object) -> dict[str, object]:
    return {"agent": {"command": ["codex", "exec", "--json", "{permissions}", "--", "{prompt}"],
                      "followup": ["codex", "exec", "--json", "{permissions}", "resume", "{session}", "--", "{prompt}"],
                      "format": "codex-json", "permissions": permissions}}


def test_claude_commands_become_allowed_bash_rules_with_the_checks_added() -> None:
    preset = parse_preset("c", claude({"commands": ["npm test", "pytest"], "tools": ["WebFetch"],
                                       "writable": ["{git_dir}"]}, checks=["make check", "pytest"]))
    argv = agent_argv(preset, "fix it", paths=PATHS)
    assert argv == ["claude", "-p", "--allowedTools", "Bash(npm test:*)", "Bash(pytest:*)", "Bash(make check:*)",
                    "WebFetch", "--add-dir", "/r/.git/worktrees/t1", "--", "fix it"]


def test_codex_sandbox_and_writable_dirs_in_the_first_run_and_the_follow_up() -> None:
    preset = parse_preset("x", codex({"sandbox": "workspace-write",
                                      "writable": ["{git_dir}", "{git_common_dir}/objects"]}))
    flags = ["--sandbox", "workspace-write", "--add-dir", "/r/.git/worktrees/t1", "--add-dir", "/r/.git/objects"]
    assert agent_argv(preset, "p", paths=PATHS) == ["codex", "exec", "--json", *flags, "--", "p"]
    assert agent_argv(preset, "more", session="s-1", followup=True, paths=PATHS) == [
        "codex", "exec", "--json", *flags, "resume", "s-1", "--", "more"]


def test_home_relative_writable_dirs_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/bot")
    preset = parse_preset("x", codex({"writable": ["~/.cache/pip"]}))
    assert permission_args(preset, PATHS) == ["--add-dir", "/home/bot/.cache/pip"]


def test_a_prompt_cannot_smuggle_permission_flags() -> None:
    preset = parse_preset("c", claude({"commands": ["pytest"]}))
    argv = agent_argv(preset, "{permissions} --allowedTools Bash", paths=PATHS)
    assert argv[-1] == "{permissions} --allowedTools Bash"
    assert argv.count("--allowedTools") == 1


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (claude({"sandbox": "workspace-write"}), "agent.permissions.sandbox", "Codex setting"),
        (codex({"commands": ["npm test"]}), "agent.permissions.commands", "sandbox decides"),
        (codex({"sandbox": "yolo"}), "agent.permissions.sandbox", "workspace-write"),
        (claude({"commands": ["npm test) Bash(rm"]}), "agent.permissions.commands[0]", "without parentheses"),
        (claude({"commands": "npm test"}), "agent.permissions.commands", "list"),
        (claude({"tools": ["Bash(rm -rf /"]}), "agent.permissions.tools[0]", "permission rule"),
        (claude({"writable": ["relative/dir"]}), "agent.permissions.writable[0]", "absolute path"),
        (claude({"writable": ["{gitdir}/x"]}), "agent.permissions.writable[0]", "unknown placeholder"),
        (claude({"allow": ["x"]}), "agent.permissions", "allow"),
        ({"agent": {"command": ["aider", "{prompt}"], "format": "aider", "permissions": {}}}, "agent.permissions",
         "not \"aider\""),
        ({"agent": {"command": ["claude", "{prompt}"], "format": "claude-stream-json",
                    "permissions": {"commands": ["pytest"]}}}, "agent.command", "{permissions}"),
        ({"agent": {"command": ["claude", "--x={permissions}", "{prompt}"], "format": "claude-stream-json",
                    "permissions": {}}}, "agent.command[1]", "whole element"),
        ({"agent": {"command": ["claude", "{permissions}", "{prompt}"]}}, "agent.command[1]", "{permissions}"),
    ],
)
def test_bad_permissions_name_the_field(body: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(PresetError) as err:
        parse_preset("p", body)
    assert err.value.field == field or field in str(err.value)
    assert fragment in str(err.value)


def test_no_permissions_field_leaves_the_argv_unchanged() -> None:
    preset = parse_preset("p", {"agent": {"command": ["agent", "{prompt}"]}})
    assert preset.agent.permissions is None
    assert agent_argv(preset, "x", paths=PATHS) == ["agent", "x"]


def test_never_commit_takes_relative_globs_only() -> None:
    assert parse_preset("a", {"agent": {"command": ["a", "{prompt}"]}, "never_commit": [".aider*", "out/*.log"]}
                        ).never_commit == (".aider*", "out/*.log")
    for bad, fragment in (("/etc/*", "absolute"), ("../x*", "'..'"), ("*", "every file"), ("**/", "every file"),
                          (".git/*", "inside .git")):
        with pytest.raises(PresetError) as err:
            parse_preset("a", {"agent": {"command": ["a", "{prompt}"]}, "never_commit": [bad]})
        assert "never_commit[0]" in str(err.value) and fragment in str(err.value), bad
