"""`superset-bot doctor` asks the installed agent CLIs (the real, pinned ones) for version and flags."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from realagents.install import NPM_PACKAGES, PIP_PACKAGES, agent_bin
from support.doctorsetup import Setup, failures, warnings

from superset_bot.agents.versions import KNOWN_CLIS, argv_flags, in_tested_range, parse_version, subcommands

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def npm_path() -> str:
    return f"{agent_bin('claude').parent}{os.pathsep}{os.environ['PATH']}"


def test_the_pinned_test_versions_are_inside_the_tested_ranges() -> None:
    for name, (_, version) in {**NPM_PACKAGES, **PIP_PACKAGES}.items():
        known = KNOWN_CLIS[name]
        parsed = parse_version(version)
        assert parsed is not None and in_tested_range(known, parsed), name
        assert known.tested == version


def test_versions_flags_and_subcommands_are_read_from_cli_output() -> None:
    assert parse_version("2.1.197 (Claude Code)") == (2, 1, 197)
    assert parse_version("codex-cli 0.171.0") == (0, 171, 0)
    assert parse_version("aider 0.86.2\n") == (0, 86, 2)
    assert parse_version("no version here") is None
    assert argv_flags(["codex", "exec", "--json", "--sandbox", "workspace-write", "resume", "s", "--", "--x"]) == [
        "--json", "--sandbox"]
    assert argv_flags(["aider", "--message=hi", "-p", "-1"]) == ["--message", "-p"]
    assert subcommands("Usage: x\n\nCommands:\n  exec    Run\n  resume  Resume a session\n\nOptions:\n  -h\n") == {
        "exec", "resume"}


async def test_the_shipped_presets_pass_against_the_real_clis(setup: Setup) -> None:
    aider_dir = agent_bin("aider").parent
    for name in ("claude-code", "codex", "aider"):
        setup.write_preset(name, json.loads((ROOT / "presets" / f"{name}.json").read_text()))
    code, text = await setup.doctor(PATH=f"{aider_dir}{os.pathsep}{npm_path()}")
    assert code == 0, text
    for program, version in (("claude", "2.1.197"), ("codex", "0.171.0"), ("aider", "0.86.2")):
        assert f"agent {program} {version} at " in text, text
    assert not warnings(text), text


async def test_a_flag_the_installed_cli_no_longer_has_is_a_failure(setup: Setup) -> None:
    setup.write_preset("agent", {"agent": {"command": ["codex", "exec", "--json", "--full-auto", "--", "{prompt}"],
                                           "format": "codex-json"}})
    code, text = await setup.doctor(PATH=npm_path())
    assert code == 1
    [line] = failures(text)
    assert "codex 0.171.0 does not accept --full-auto" in line


async def test_a_version_outside_the_tested_range_is_a_warning(setup: Setup) -> None:
    bin_dir = setup.tmp / "old"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo '1.0.3 (Claude Code)'; exit 0; fi\n"
                      "echo 'Usage: claude [options]'; echo '  -p, --print  print'; echo '  --verbose'\n")
    claude.chmod(0o755)
    setup.write_preset("agent", {"agent": {"command": ["claude", "-p", "--verbose", "--output-format", "stream-json",
                                                       "{prompt}"], "format": "claude-stream-json"}})
    code, text = await setup.doctor(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    [warning] = warnings(text)
    assert "claude 1.0.3 is outside the tested range" in warning
    [failure] = failures(text)  # and the old help has no --output-format
    assert "does not accept --output-format" in failure and code == 1


async def test_a_cli_that_cannot_run_is_said_plainly(setup: Setup) -> None:
    bin_dir = setup.tmp / "broken"
    bin_dir.mkdir()
    codex = bin_dir / "codex"
    codex.write_text("#!/bin/sh\necho 'codex: error while loading shared libraries' >&2\nexit 127\n")
    codex.chmod(0o755)
    setup.write_preset("agent", {"agent": {"command": ["codex", "exec", "{prompt}"]}})
    code, text = await setup.doctor(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert code == 1
    [line] = failures(text)
    assert "does not run" in line and "exited 127" in line and "shared libraries" in line
    assert shutil.which("codex", path=str(bin_dir))
