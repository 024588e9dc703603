"""superset_bot.git.naming: task branch names and slugs, and check_branch_name against real git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import RepoFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from superset_bot.config import ConfigError, load_settings
from superset_bot.domain.commands import CommandError, parse
from superset_bot.git.commands import GitError
from superset_bot.git.naming import (
    POOL_PREFIX,
    BadBranchName,
    branch_name,
    branch_ref_dir,
    check_branch_name,
    is_pool_spare,
    slugify,
    task_id_from_branch,
)


def valid_branch(name: str, cwd: Path | None = None) -> bool:
    """What `git check-ref-format --branch` says; with `cwd`, outside any repository (no `@{-1}` lookups)."""
    env = None
    if cwd is not None:
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)}
    done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, text=True,
                          cwd=cwd, env=env)
    return done.returncode == 0 and done.stdout.strip() == name


# --------------------------------------------------------------------------- names

NASTY_PROMPTS = [
    "Fix the flaky login test!",
    "--upload-pack=evil",
    "-rf /",
    "$(rm -rf /); `reboot` | cat /etc/passwd > /dev/null & echo ${HOME} ; <x> * ? ~ ^ : \\ [a] {b}",
    "refs/heads/main..HEAD@{1}.lock",
    "..",
    ".lock",
    "Café crème brûlée – naïve façade",
    "日本語のテスト",
    "Ünïcödé 🚀 emoji",
    "\x00\x01\x7f control \t tabs \n newlines",
    "",
    "   ",
    "-",
    "a" * 10_000,
    "word " * 2_000,
]


@pytest.mark.parametrize("prompt", NASTY_PROMPTS)
def test_branch_names_are_safe(prompt: str) -> None:
    slug = slugify(prompt)
    assert slug and len(slug) <= 40
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in slug)
    assert not slug.startswith("-") and not slug.endswith("-") and "--" not in slug
    name = branch_name("abc123", prompt)
    assert name == f"superset/abc123/{slug}"
    assert valid_branch(name)


def test_slug_examples() -> None:
    assert slugify("Fix the flaky login test!") == "fix-the-flaky-login-test"
    assert slugify("--upload-pack=evil") == "upload-pack-evil"
    assert slugify("Café crème") == "cafe-creme"
    assert slugify("日本語") == "task"
    assert slugify("") == "task"
    assert slugify("a" * 10_000) == "a" * 40
    assert slugify("alpha beta gamma delta", max_len=13) == "alpha-beta"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=80))
def test_slug_property(prompt: str, max_len: int) -> None:
    slug = slugify(prompt, max_len)
    assert 1 <= len(slug) <= max(max_len, 4)
    assert slug.strip("-") == slug and "--" not in slug
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


@pytest.mark.parametrize("task_id", ["", "ABC", "a-b", "../x", "a b", "-x", "abc\n", "x" * 33])
def test_bad_task_ids(task_id: str) -> None:
    with pytest.raises(GitError, match="task id"):
        branch_name(task_id, "prompt")



def test_task_id_from_branch_and_pool_spares() -> None:
    assert task_id_from_branch(branch_name("abc123", "Fix it")) == "abc123"
    assert task_id_from_branch("superset/abc123") == "abc123"
    assert task_id_from_branch("feature/abc123-x") is None
    assert is_pool_spare(Path(f"/wt/demo/{POOL_PREFIX}x1"), None)
    assert not is_pool_spare(Path(f"/wt/demo/{POOL_PREFIX}x1"), "superset/x1-task")
    assert not is_pool_spare(Path("/wt/demo/x1"), None)


# --------------------------------------------------------------------------- check_branch_name


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside any repository, for asking git about names."""
    return tmp_path_factory.mktemp("no-repo")


VALID_BRANCHES = [
    "main", "feature/login", "superset/abc123-fix-it", "release-1.0", "a.b", "a.lock.b", "x.lockx", "a/b.c",
    "@", "a@b", "a/@", "a{b}", "a/-b", "a-", "'main'", "a/HEAD", "HEADS", "refs/heads/main", "ümlaut",
    "a\u00a0b", "a$b#c!d%e+f=g,h;i<j>k|l\"m", "x" * 300,
]

INVALID_BRANCHES = [
    ("", "empty"),
    ("-x", "starts with '-'"),
    ("-", "starts with '-'"),
    ("--upload-pack=evil", "starts with '-'"),
    ("HEAD", "HEAD"),
    ("a..b", r"'\.\.'"),
    ("..", r"'\.\.'"),
    ("main..HEAD", r"'\.\.'"),
    ("a@{b", "'@{'"),
    ("@{-1}", "'@{'"),
    ("main@{1}", "'@{'"),
    ("a.lock", r"ends with '\.lock'"),
    ("a/b.lock", r"'b\.lock' ends with '\.lock'"),
    ("a.lock/b", r"'a\.lock' ends with '\.lock'"),
    ("a b", "space or a control character"),
    ("main ", "space or a control character"),
    ("a\tb", "space or a control character"),
    ("a\nb", "space or a control character"),
    ("a\x01b", "space or a control character"),
    ("a\x1fb", "space or a control character"),
    ("a\x7fb", "space or a control character"),
    ("a~b", "'~'"),
    ("main~1", "'~'"),
    ("a^b", r"'\^'"),
    ("a:b", "':'"),
    ("a?b", r"'\?'"),
    ("a*b", r"'\*'"),
    ("a[b", r"'\['"),
    ("a\\b", r"'\\\\'"),
    ("/a", "starts with '/'"),
    ("a/", "ends with '/'"),
    ("a/b/", "ends with '/'"),
    ("a//b", "'//'"),
    ("a.", r"ends with '\.'"),
    ("a/.", r"ends with '\.'"),
    (".a", r"starts with '\.'"),
    (".lock", r"starts with '\.'"),
    ("a/.b", r"'\.b' starts with '\.'"),
    ("a/.lock", r"'\.lock' starts with '\.'"),
]


@pytest.mark.parametrize("name", VALID_BRANCHES)
def test_check_branch_name_accepts_what_git_accepts(name: str, outside: Path) -> None:
    assert valid_branch(name, outside), f"git refuses {name!r}: the test list is wrong"
    assert check_branch_name(name) == name


@pytest.mark.parametrize(("name", "reason"), INVALID_BRANCHES)
def test_check_branch_name_refuses_what_git_refuses(name: str, reason: str, outside: Path) -> None:
    assert not valid_branch(name, outside), f"git accepts {name!r}: the test list is wrong"
    with pytest.raises(BadBranchName, match=reason) as info:
        check_branch_name(name)
    assert isinstance(info.value, ValueError)
    assert info.value.name == name and info.value.reason in str(info.value)
    assert str(info.value).startswith(f"{name!r} is not a valid branch name: ")


def test_check_branch_name_refuses_nul() -> None:
    # git never sees this one: a NUL cannot be passed in an argument at all.
    with pytest.raises(BadBranchName, match="control character"):
        check_branch_name("a\0b")


def test_task_branch_names_pass_the_check() -> None:
    for prompt in NASTY_PROMPTS:
        assert check_branch_name(branch_name("abc123", prompt))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=list("ab./-@{}~^:?*[\\ \t\x7fHEADlock\u00e9"), max_size=12))
def test_check_branch_name_agrees_with_git(outside: Path, name: str) -> None:
    try:
        check_branch_name(name)
    except BadBranchName:
        ours = False
    else:
        ours = True
    assert ours == valid_branch(name, outside), name


# --------------------------------------------------------------------------- the places that take a branch name


@pytest.mark.parametrize("base", ["a..b", "main.lock", "HEAD", "main~1", "-main", "main/"])
def test_spawn_command_refuses_a_bad_base(base: str) -> None:
    with pytest.raises(CommandError, match=r"is not a valid branch name for --base: .*\nUsage: "):
        parse(f"spawn --base {base} fix it")
    assert parse("spawn --base feature/login fix it").options == {"base": "feature/login"}


def test_channel_default_base_is_checked(make_repo: RepoFactory, tmp_path: Path) -> None:
    env = {"SUPERSET_REPOS": f"demo={make_repo('demo')}", "SUPERSET_DATA_DIR": str(tmp_path / "data"),
           "SUPERSET_PRESETS_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match=r'base "main\.lock" for C2CD is not a valid branch name: it ends with'):
        load_settings({**env, "SUPERSET_CHANNEL_DEFAULTS": "C2CD=base:main.lock"}, env_file=None)
    settings = load_settings({**env, "SUPERSET_CHANNEL_DEFAULTS": "C2CD=base:dev"}, env_file=None)
    assert settings.channel_defaults["C2CD"].base == "dev"


def test_a_task_owns_its_ref_folder_and_old_names_still_belong_to_their_task() -> None:
    assert task_id_from_branch("superset/abc123/fix-it") == "abc123"
    assert task_id_from_branch("superset/abc123-fix-it") == "abc123", "as older releases named them"
    assert branch_ref_dir("superset/abc123/fix-it") == "superset/abc123"
    assert branch_ref_dir("superset/abc123-fix-it") is None, "a folder all old branches share"
    assert branch_ref_dir("feature/x") is None
