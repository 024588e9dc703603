"""What the real-CLI modules (claude.py, codex.py, aider.py) share: the shipped presets, PATH, git
repos with a linked worktree as the engine makes them, running a command with its output merged,
and writing normalised recordings for `record(out_dir)`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from realagents.install import agent_bin
from superset_bot.presets import agent_argv, parse_preset

PROJECT = Path(__file__).resolve().parents[2]
PRESETS = PROJECT / "presets"

# where recorded fixtures say the task's repo and temp dir were (the worktree is each CLI's own)
SAMPLE_REPO = "/srv/repo"
SAMPLE_TMP = "/srv/tmp"


def preset_file(name: str) -> Path:
    return PRESETS / f"{name}.json"


def preset_body(name: str) -> dict[str, Any]:
    """The shipped preset `name`, as the engine loads it."""
    body: dict[str, Any] = json.loads(preset_file(name).read_text())
    return body


def bin_dir(cli: str) -> Path:
    """The directory of the pinned `cli` (installed on first use); put it first in PATH."""
    return agent_bin(cli).parent


def agent_path(cli: str) -> str:
    """A PATH with the pinned `cli` first, then the system's directories."""
    return f"{bin_dir(cli)}:/usr/local/bin:/usr/bin:/bin"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def make_worktree(root: Path, name: str, files: Mapping[str, str]) -> tuple[Path, Path]:
    """A repo with `files` in one commit and a linked worktree `name` on a new branch, as the engine makes them."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bot@example.com")
    git(repo, "config", "user.name", "bot")
    for path, content in files.items():
        (repo / path).write_text(content)
    git(repo, "add", *files)
    git(repo, "commit", "-q", "-m", "init")
    worktree = root / "wt" / name
    git(repo, "worktree", "add", "-q", "-b", f"superset/{name}", str(worktree))
    return repo, worktree


def task_paths(repo: Path, worktree: Path) -> dict[str, str]:
    """As the engine fills a preset's paths: {ref_dir} and {ref_log_dir} are the folder the worktree's
    branch lives in (made, as the engine makes them)."""
    git_dir = git(worktree, "rev-parse", "--absolute-git-dir").strip()
    folder = git(worktree, "symbolic-ref", "--short", "HEAD").strip().rsplit("/", 1)[0]
    ref_dir, ref_log_dir = repo / ".git" / "refs" / "heads" / folder, repo / ".git" / "logs" / "refs" / "heads" / folder
    for made in (ref_dir, ref_log_dir):
        made.mkdir(parents=True, exist_ok=True)
    return {"worktree": str(worktree), "git_dir": git_dir, "git_common_dir": str(repo / ".git"),
            "ref_dir": str(ref_dir), "ref_log_dir": str(ref_log_dir)}


def run_merged(argv: Sequence[str], cwd: Path, env: Mapping[str, str], *, timeout: float) -> tuple[int, str]:
    """Run `argv` with no stdin, stdout and stderr merged (as the engine's log holds them): exit code, output."""
    done = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout


def run_preset(name: str, prompt: str, repo: Path, worktree: Path, env: Mapping[str, str], *,
               session: str | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run the shipped preset `name`'s command (or its follow-up with `session`) in `worktree`."""
    preset = parse_preset(name, preset_body(name), source=preset_file(name))
    argv = agent_argv(preset, prompt, session=session, followup=session is not None,
                      paths=task_paths(repo, worktree))
    return run_merged(argv, worktree, env, timeout=timeout)


def replace_paths(text: str, shown: Sequence[tuple[Path, str]]) -> str:
    """`text` with each path replaced by what fixtures show for it, the longest (innermost) first."""
    for path, instead in sorted(shown, key=lambda pair: -len(str(pair[0]))):
        text = text.replace(str(path), instead)
    return text


class Recording:
    """Where `record(out_dir)` writes: `out_dir / pattern.format(name=...)` for each scenario saved.

    Only the scenarios in `names` are written (all when None); `written` lists the files.
    """

    def __init__(self, out_dir: Path, pattern: str, names: Sequence[str] | None = None,
                 normalise: Callable[[str], str] = str) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir, self.pattern, self.names, self.normalise = out_dir, pattern, names, normalise
        self.written: list[Path] = []

    def save(self, name: str, output: str) -> None:
        if self.names is None or name in self.names:
            path = self.out_dir / self.pattern.format(name=name)
            path.write_text(self.normalise(output))
            self.written.append(path)


class TaskRecording(Recording):
    """A Recording whose runs of the shipped preset `preset` share one temp dir `root`: the `repo`,
    its linked `worktree`, a dir `outside` it and the agent's `home`.

    What is saved shows the worktree as `sample_worktree`, the repo and temp dir as SAMPLE_REPO
    and SAMPLE_TMP, and the fake server's port as 8080.
    """

    def __init__(self, root: Path, out_dir: Path, names: Sequence[str] | None, *, cli: str, preset: str,
                 files: Mapping[str, str], sample_worktree: str, pattern: str) -> None:
        super().__init__(out_dir, pattern, names, self._normalise)
        self.root, self.preset, self.sample_worktree = root, preset, sample_worktree
        self.repo, self.worktree = make_worktree(root, f"{cli}-task", files)
        self.outside = root / "outside"
        self.outside.mkdir()
        self.home = root / "home"
        self.home.mkdir()

    def run(self, prompt: str, env: Mapping[str, str], *, session: str | None = None) -> str:
        """The merged output of the preset's command (or its follow-up with `session`), HOME being `home`."""
        return run_preset(self.preset, prompt, self.repo, self.worktree, {**env, "HOME": str(self.home)},
                          session=session)[1]

    def _normalise(self, text: str) -> str:
        text = replace_paths(text, [(self.worktree, self.sample_worktree), (self.repo, SAMPLE_REPO),
                                    (self.root, SAMPLE_TMP)])
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:8080", text)


@contextmanager
def task_recording(out_dir: Path, names: Sequence[str] | None, *, cli: str, preset: str, files: Mapping[str, str],
                   sample_worktree: str, pattern: str) -> Iterator[TaskRecording]:
    """A TaskRecording in a fresh temp dir (removed at the end), the worktree named `<cli>-task`."""
    with tempfile.TemporaryDirectory(prefix=f"{cli}-record-") as tmp:
        yield TaskRecording(Path(tmp).resolve(), out_dir, names, cli=cli, preset=preset, files=files,
                            sample_worktree=sample_worktree, pattern=pattern)
