"""Shared fixtures: a private git config, real repositories in temp dirs, and the harnesses'
fixtures (tests/support/), registered once here; and no process a test started outlives the suite."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.procs import left_running

TESTS_DIR = Path(__file__).parent
AGENTS_DIR = TESTS_DIR / "agents"

# the fixtures every test may ask for by name: harness, bot, killable, setup
pytest_plugins = ["support.engineharness", "support.slackharness", "support.faultbot", "support.doctorsetup",
                  "support.temporal"]


@pytest.fixture(autouse=True, scope="session")
def _isolated_git_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read the machine's git config, and commits always have an author."""
    cfg = tmp_path_factory.mktemp("gitconfig") / "gitconfig"
    cfg.write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")}
    os.environ["GIT_CONFIG_GLOBAL"] = str(cfg)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True, scope="session")
def _nothing_outlives_the_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end, no process may still run in the suite's temp dirs (agents, git, bots: each test
    stops what it started). One being stopped gets 10 s; anything left fails the run, named."""
    yield
    left = left_running(tmp_path_factory.getbasetemp())
    if left:
        pytest.fail("processes started by the tests still run after the suite:\n" + "\n".join(left), pytrace=False)


def git(cwd: Path, *args: str) -> str:
    """Run git synchronously in a test (never in bot code) and return stdout."""
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


RepoFactory = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Create a real git repo with an initial commit on `main`: make_repo("demo", {"a.txt": "x"})."""

    def factory(name: str = "demo", files: dict[str, str] | None = None, branch: str = "main") -> Path:
        repo = tmp_path / "repos" / name
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", branch)
        for rel, content in (files or {"README.md": f"# {name}\n"}).items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial commit")
        return repo

    return factory
