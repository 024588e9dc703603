"""The `superset-bot` command as a new user meets it: real processes, real repo, real stdin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.env import bot_env

ROOT = Path(__file__).parents[2]


def run_cli(args: list[str], env: dict[str, str], cwd: Path, stdin: str = "", timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "superset_bot.cli", *args], input=stdin, capture_output=True, text=True,
        env=env, cwd=cwd, timeout=timeout,
    )


def base_env(tmp_path: Path, repo: Path | None = None) -> dict[str, str]:
    return bot_env(tmp_path, repo, presets=ROOT / "presets")


def test_run_without_tokens_says_what_is_missing(tmp_path: Path, make_repo: RepoFactory) -> None:
    result = run_cli(["run"], base_env(tmp_path, make_repo()), tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in result.stderr
    assert "SLACK_APP_TOKEN is not set" in result.stderr
    assert "superset-bot console" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_http_without_signing_secret(tmp_path: Path, make_repo: RepoFactory) -> None:
    env = {**base_env(tmp_path, make_repo()), "SLACK_BOT_TOKEN": "xoxb-1-2-3"}
    result = run_cli(["run", "--http"], env, tmp_path)
    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET is not set" in result.stderr
    assert "xoxb-1-2-3" not in result.stderr + result.stdout


def test_bad_config_is_listed_not_raised(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    env = {**base_env(tmp_path), "SUPERSET_REPOS": f"demo={plain}", "SUPERSET_MAX_CONCURRENT": "many"}
    result = run_cli(["console"], env, tmp_path)
    assert result.returncode == 2
    assert f'SUPERSET_REPOS: "demo" points to {plain}, which is not a git repository' in result.stderr
    assert 'SUPERSET_MAX_CONCURRENT: expected a whole number, got "many"' in result.stderr
    assert "Traceback" not in result.stderr


def test_env_file_is_read(tmp_path: Path, make_repo: RepoFactory) -> None:
    repo = make_repo()
    (tmp_path / ".env").write_text("SUPERSET_MAX_CONCURRENT=zero\n")
    result = run_cli(["console"], base_env(tmp_path, repo), tmp_path)
    assert 'SUPERSET_MAX_CONCURRENT: expected a whole number, got "zero"' in result.stderr


def test_console_first_run_with_demo_preset(tmp_path: Path, make_repo: RepoFactory) -> None:
    """README's first run: spawn with the demo preset, review, then merge in a second session."""
    repo = make_repo()
    env = base_env(tmp_path, repo)
    first = run_cli(["console"], env, tmp_path, stdin="spawn --preset demo add a greeting\nbogus\n")
    out = first.stdout
    assert first.returncode == 0, first.stderr
    match = re.search(r"Started task `(\w+)` in `demo` with preset `demo`", out)
    assert match, out
    task_id = match.group(1)
    assert 'Unknown command "bogus"' in out
    assert f"[{task_id}] ready for review:" in out, out
    assert "Merges cleanly into main." in out
    assert "SUPERSET_DEMO.md" in out

    second = run_cli(["console"], env, tmp_path,
                     stdin=f"list\nmerge {task_id}\nmerge {task_id}\nprune --dry-run\ndigest\n")
    assert second.returncode == 0, second.stderr
    assert re.search(rf"Merged `superset/{task_id}/[\w-]+` into `main` \([0-9a-f]{{10}}\)", second.stdout), second.stdout
    assert "already merged by console" in second.stdout
    assert "Nothing to prune." in second.stdout
    assert "Closed since the last digest:" in second.stdout and "Worktrees: demo" in second.stdout
    assert "SUPERSET_DEMO.md" in git(repo, "show", "--stat", "main")
    assert (repo / "SUPERSET_DEMO.md").exists()


def test_doctor_lists_what_blocks_running(tmp_path: Path, make_repo: RepoFactory) -> None:
    env = {**base_env(tmp_path, make_repo()), "SUPERSET_DEFAULT_PRESET": "demo"}
    result = run_cli(["doctor"], env, tmp_path)
    assert result.returncode == 1
    assert "✗ Slack: SLACK_BOT_TOKEN is not set" in result.stdout
    assert "✓ preset demo" in result.stdout and "✓ git" in result.stdout
    assert "Traceback" not in result.stderr


def test_tokens_never_reach_the_log(capfd: pytest.CaptureFixture[str]) -> None:
    import logging

    from superset_bot.cli import setup_logging

    token = "xoxb-1111-2222-abcdefSECRET"
    setup_logging("DEBUG", [token])
    try:
        logging.getLogger("slack_sdk.web").debug("Sending a request - headers: {'Authorization': 'Bearer %s'}", token)
        logging.getLogger("superset_bot.engine.core").info("task k3x9qa: running (%s)", "superset-bot")
    finally:
        logging.getLogger().handlers.clear()
    err = capfd.readouterr().err
    assert token not in err and "Bearer [redacted]" in err
    assert "task k3x9qa: running" in err


def test_sigusr1_logs_every_coroutine_stack(tmp_path: Path, make_repo: RepoFactory) -> None:
    """`kill -USR1` on a running bot writes where each asyncio task waits to the log, and nothing stops."""
    import signal
    import time

    repo = make_repo("demo", {"README.md": "# demo\n"})
    env = {**base_env(tmp_path, repo), "SUPERSET_POOL_SIZE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "superset_bot.cli", "console"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("list\n")  # once answered, the engine is up and the signal handler installed
        proc.stdin.flush()
        for line in proc.stdout:
            if "No tasks" in line:
                break
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)  # the handler runs on the loop; the bot keeps going either way
        out, err = proc.communicate(input="list\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "SIGUSR1:" in err and "asyncio tasks:" in err and "--- " in err, err
