"""`superset-bot doctor` against the fake Slack, real repos and real preset files, healthy and broken."""

from __future__ import annotations

import io
import os
import socket

import pytest
from support.doctorsetup import Setup, check_lines, failures, warnings
from support.fakeslack import DEFAULT_SCOPES

from superset_bot.config import load_settings
from superset_bot.doctor import REQUIRED_BOT_SCOPES, mask_token, run_doctor


def block_of(text: str, first_line: str) -> str:
    """A check's line and its indented fix lines."""
    lines = text.splitlines()
    start = lines.index(first_line)
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return "\n".join(lines[start:end])


async def test_healthy_socket_mode_setup_passes_every_check(setup: Setup) -> None:
    code, text = await setup.doctor()
    assert code == 0, text
    lines = check_lines(text)
    assert lines and all(line.startswith("✓") for line in lines), text
    for expected in ("configuration loads", "bot token xoxb-…alue works", "Slack scopes: all",
                     "Socket Mode: the app-level token xapp-…alue can open a connection", "git 2.",
                     f"repo demo (default): {setup.repo}, default branch main, main checkout clean",
                     "preset agent (default): agent", "data dir", "free disk"):
        assert any(expected in line for line in lines), f"no line with {expected!r}:\n{text}"
    assert "All good" in text
    assert len(setup.fake.calls_to("auth.test")) == 1
    assert len(setup.fake.calls_to("apps.connections.open")) == 1
    assert setup.fake.rejected == []


async def test_http_mode_needs_the_signing_secret_not_the_app_token(setup: Setup) -> None:
    code, text = await setup.doctor(http=True)
    assert code == 0, text
    assert any("HTTP mode: SLACK_SIGNING_SECRET is set" in line for line in check_lines(text))
    assert setup.fake.calls_to("apps.connections.open") == []

    code, text = await setup.doctor(http=True, SLACK_SIGNING_SECRET="")
    assert code == 1
    [line] = failures(text)
    assert "SLACK_SIGNING_SECRET is not set" in line
    assert "Basic Information" in block_of(text, line)


async def test_mode_follows_what_run_would_pick(setup: Setup) -> None:
    """Without --http, the doctor checks HTTP mode only when no app token is set, as `run` decides."""
    code, text = await setup.doctor(SLACK_APP_TOKEN="")
    assert code == 0, text
    assert any(line.startswith("✓ HTTP mode") for line in check_lines(text))

    code, text = await setup.doctor(SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET="")
    assert code == 1
    [line] = failures(text)
    assert "Socket Mode: SLACK_APP_TOKEN is not set" in line
    assert "connections:write" in block_of(text, line)


async def test_missing_scope_names_the_scope_and_the_fix(setup: Setup) -> None:
    setup.fake.scopes = [s for s in DEFAULT_SCOPES if s != "reactions:write"]
    code, text = await setup.doctor()
    assert code == 1
    [line] = failures(text)
    assert "reactions:write" in line
    fix = block_of(text, line)
    assert "OAuth & Permissions" in fix and "reinstall" in fix
    assert REQUIRED_BOT_SCOPES["reactions:write"] in fix  # why the bot needs it


async def test_wrong_bot_token_is_invalid_auth_and_never_printed(setup: Setup) -> None:
    wrong = "xoxb-9999-8888-somebodyelsestoken"
    setup.extra_secrets.append(wrong)
    code, text = await setup.doctor(SLACK_BOT_TOKEN=wrong)
    assert code == 1
    [line] = failures(text)
    assert "invalid_auth" in line and "xoxb-…oken" in line
    assert "OAuth & Permissions" in block_of(text, line)


async def test_wrong_app_token_is_reported_for_socket_mode(setup: Setup) -> None:
    wrong = "xapp-1-A1-0000-notthistoken"
    setup.extra_secrets.append(wrong)
    code, text = await setup.doctor(SLACK_APP_TOKEN=wrong)
    assert code == 1
    [line] = failures(text)
    assert line.startswith("✗ Socket Mode") and "invalid_auth" in line
    assert "App-Level Tokens" in block_of(text, line)


async def test_no_tokens_at_all_says_where_to_get_them(setup: Setup) -> None:
    code, text = await setup.doctor(SLACK_BOT_TOKEN="", SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET="")
    assert code == 1
    found = failures(text)
    assert any("SLACK_BOT_TOKEN is not set" in line for line in found)
    assert any("SLACK_APP_TOKEN is not set" in line for line in found)
    assert setup.fake.calls == []


async def test_slack_unreachable_is_a_failure_not_a_traceback(setup: Setup) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, text = await setup.doctor(SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
    assert code == 1
    assert any("cannot reach" in line for line in failures(text))
    assert "Traceback" not in text


async def test_plain_directory_as_repo_fails_the_configuration(setup: Setup) -> None:
    plain = setup.tmp / "plain"
    plain.mkdir()
    code, text = await setup.doctor(SUPERSET_REPOS=f"demo={plain}")
    assert code == 1
    line = failures(text)[0]
    assert line.startswith("✗ configuration")
    assert "not a git repository" in block_of(text, line)
    assert any(line.startswith("✓ git ") for line in check_lines(text))  # still checked
    assert "fix it and run the doctor again" in text


async def test_broken_git_dir_is_not_a_git_repository(setup: Setup) -> None:
    broken = setup.tmp / "broken"
    (broken / ".git").mkdir(parents=True)  # passes the config's quick look, not git's
    code, text = await setup.doctor(SUPERSET_REPOS=f"demo={setup.repo},broken={broken}")
    assert code == 1
    [line] = failures(text)
    assert line.startswith("✗ repo broken:") and "not a git repository" in line
    assert "top folder of a git clone" in block_of(text, line)
    assert any(line.startswith("✓ repo demo (default)") for line in check_lines(text))


async def test_preset_with_a_bad_field_names_file_and_field(setup: Setup) -> None:
    setup.write_preset("broken", {"description": "x", "agent": {"command": ["x"]}, "limits": {"timeout": "soon"}})
    code, text = await setup.doctor()
    assert code == 1
    [line] = failures(text)
    assert "broken.json" in line and "limits.timeout" in line
    assert "refuses to start" in block_of(text, line)


async def test_default_preset_agent_missing_blocks_other_presets_only_warn(setup: Setup) -> None:
    setup.write_preset("other", {"description": "x", "agent": {"command": ["superset-no-such-agent", "{prompt}"]}})
    code, text = await setup.doctor()
    assert code == 0, text
    [line] = warnings(text)
    assert line.startswith("! preset other:") and "superset-no-such-agent" in line

    code, text = await setup.doctor(SUPERSET_DEFAULT_PRESET="other")
    assert code == 1
    [line] = failures(text)
    assert line.startswith("✗ preset other (default):") and "not installed or not on PATH" in line
    assert "SUPERSET_DEFAULT_PRESET" in block_of(text, line)


async def test_agent_is_looked_up_on_the_bots_path(setup: Setup) -> None:
    bin_dir = setup.tmp / "bin"
    bin_dir.mkdir()
    agent = bin_dir / "my-agent"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    setup.write_preset("agent", {"description": "x", "agent": {"command": ["my-agent", "{prompt}"]}})
    code, text = await setup.doctor()
    assert code == 1 and "my-agent" in failures(text)[0]
    code, text = await setup.doctor(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert code == 0, text
    assert f"agent my-agent found at {agent}" in text


async def test_unknown_default_preset_lists_the_known_ones(setup: Setup) -> None:
    code, text = await setup.doctor(SUPERSET_DEFAULT_PRESET="nope")
    assert code == 1
    [line] = failures(text)
    assert "nope" in line and "SUPERSET_DEFAULT_PRESET" in line
    assert "agent" in block_of(text, line)


async def test_dirty_main_checkout_is_only_a_warning(setup: Setup) -> None:
    (setup.repo / "README.md").write_text("# changed\n")
    (setup.repo / "notes.txt").write_text("new\n")
    code, text = await setup.doctor()
    assert code == 0, text
    [line] = warnings(text)
    assert line.startswith("! repo demo (default):")
    assert "README.md" in line and "notes.txt" in line
    assert "commit or stash" in block_of(text, line)
    assert "warning" in text.splitlines()[-1]


async def test_free_disk_below_the_minimum_blocks(setup: Setup) -> None:
    code, text = await setup.doctor(SUPERSET_MIN_FREE_DISK="100000T")
    assert code == 1
    [line] = failures(text)
    assert line.startswith("✗ free disk") and "SUPERSET_MIN_FREE_DISK" in line


async def test_git_needs_to_be_on_path_for_the_doctor_too(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """With git missing every git-based check fails with an install hint, never a traceback."""
    empty = setup.tmp / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, text = await setup.doctor()
    monkeypatch.undo()
    assert code == 1
    git_line = next(line for line in failures(text) if line.startswith("✗ git"))
    assert "install git" in block_of(text, git_line)
    assert "Traceback" not in text


def test_mask_token_shows_at_most_prefix_and_last_four() -> None:
    assert mask_token("xoxb-1234-5678-abcdefghijkl") == "xoxb-…ijkl"
    assert mask_token("xapp-1-A1-secretsecret") == "xapp-…cret"
    assert mask_token("xoxb-short") == "xoxb-…"
    assert mask_token("weird-no-prefix-but-long") == "…long"
    assert mask_token(None) == "(not set)"


async def test_ascii_output_when_the_terminal_cannot_show_marks(setup: Setup) -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    code = await run_doctor(lambda: load_settings({**setup.env, "SLACK_BOT_TOKEN": ""}, env_file=None),
                            out=out, http=True, timeout=5)
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert code == 1
    assert "[FAIL] Slack: SLACK_BOT_TOKEN is not set" in text and "[ok] git" in text



async def test_a_web_page_instead_of_slack_is_a_failure_not_a_traceback(setup: Setup) -> None:
    from aiohttp import web

    app = web.Application()
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy login</html>", content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        code, text = await setup.doctor(SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
    finally:
        await runner.cleanup()
    assert code == 1
    found = failures(text)
    assert len(found) == 2 and all("did not answer like Slack's Web API" in line for line in found), text
    assert "Traceback" not in text
