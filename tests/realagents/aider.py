"""Driving the real, pinned `aider` against the fake chat completions server (fakemodels.openai_chat).

aider is pointed at the fake the way a user points it at any OpenAI-compatible server: by env,
`AIDER_MODEL=openai/<name>`, `OPENAI_API_BASE`, `OPENAI_API_KEY` (aider reads an `AIDER_<OPTION>`
variable for every option). For a model it does not know, aider uses the "whole" edit format and
prints no cost; a `~/.aider.model.metadata.json` with the model's prices (what a user writes
for a custom model) makes it print `Cost: ...`, and `AIDER_EDIT_FORMAT=diff` gives the
SEARCH/REPLACE format that well-known models get (the only one in which aider offers to run the
model's shell commands). `LITELLM_LOCAL_MODEL_COST_MAP=True` keeps litellm from downloading its
price list, so a run touches nothing but 127.0.0.1.

`record(out_dir)` re-records tests/samples/aider_*.txt with the shipped preset's command line
(about 1.5 minutes: the HTTP 500 scenario waits out aider's eight retries).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fakemodels.openai_chat import FakeOpenAIChat, Reply, diff_edit, whole_edit

from realagents import common

PRESET = "aider"
MODEL = "fake-coder"
# dollars per token, so that the fake's usage numbers give a visible cost
PRICES = {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05}


def preset_body() -> dict[str, Any]:
    """The shipped preset, as the bot loads it."""
    return common.preset_body(PRESET)


def bindir() -> Path:
    """The directory of the pinned `aider` (installing it on first use): put it first in PATH."""
    return common.bin_dir("aider")


def write_model_metadata(home: Path, model: str = MODEL, prices: dict[str, float] | None = None) -> Path:
    """`~/.aider.model.metadata.json` giving aider a context window and prices for `openai/<model>`."""
    path = home / ".aider.model.metadata.json"
    path.write_text(json.dumps({f"openai/{model}": {
        "max_input_tokens": 128000, "max_output_tokens": 8192, "litellm_provider": "openai", "mode": "chat",
        **(PRICES if prices is None else prices),
    }}, indent=2))
    return path


def seed_price_cache(home: Path) -> Path:
    """aider's day-old-at-most copy of litellm's price list, without this model: no download, no prices.

    A real user of a model aider does not know sees the same (plus, without the cache, aider's
    attempt to download the list).
    """
    path = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"some-other-model": {"max_input_tokens": 8192, "litellm_provider": "openai"}}))
    return path


def aider_env(base_url: str, *, model: str = MODEL, key: str = "sk-fake-aider", edit_format: str | None = None
              ) -> dict[str, str]:
    """The variables that point aider at the fake server (add PATH and HOME)."""
    env = {
        "AIDER_MODEL": f"openai/{model}",
        "OPENAI_API_BASE": base_url,
        "OPENAI_API_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    if edit_format:
        env["AIDER_EDIT_FORMAT"] = edit_format
    return env


def preset_argv(prompt: str, *, followup: bool = False) -> list[str]:
    """The shipped preset's command (or follow-up) with the prompt filled in, as the bot runs it."""
    agent = preset_body()["agent"]
    template = agent["followup"] if followup else agent["command"]
    return [element.replace("{prompt}", prompt) for element in template]


# --------------------------------------------------------------------------- recording


def _scratch(base: Path) -> tuple[Path, Path, dict[str, str]]:
    """A repo with one commit, a linked worktree (as the bot makes), and a base env with its own HOME."""
    repo, worktree, home = base / "repo", base / "worktree", base / "home"
    for path in (repo, home):
        path.mkdir(parents=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    env = {"PATH": common.agent_path("aider"), "HOME": str(home), "GIT_CONFIG_GLOBAL": str(gitconfig),
           "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C.UTF-8"}
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")}
    os.environ.update({"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"})
    try:
        common.git(repo, "init", "-q", "-b", "main")
        (repo / "README.md").write_text("# demo\n")
        common.git(repo, "add", "-A")
        common.git(repo, "commit", "-q", "-m", "initial commit")
        common.git(repo, "worktree", "add", "-q", "-b", "task", str(worktree))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return repo, worktree, env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    return common.run_merged(argv, cwd, env, timeout=300)[1]


def record(out_dir: Path) -> list[Path]:
    """Run the scenarios with the shipped preset's argv and write tests/samples/aider_*.txt."""
    rec = common.Recording(out_dir, "{name}.txt")
    scenarios: list[tuple[str, list[Reply], str | None, bool]] = [
        # name, replies, edit format, with prices
        ("aider_whole", [Reply(text=whole_edit("hello.txt", "hello from the model\n",
                                               "I'll create hello.txt with a greeting."))], None, False),
        ("aider_diff", [Reply(text=diff_edit("hello.txt", "", "hello from the model\n", "Creating hello.txt.")
                              + "\nThen check it:\n\n```bash\npython3 -m pytest -q\ncat hello.txt\n```\n",
                              prompt_tokens=1234, completion_tokens=56),
                        Reply(text=diff_edit("hello.txt", "hello from the model\n", "hello again\n",
                                             "Changing the greeting."), prompt_tokens=15321, completion_tokens=300)],
         "diff", True),
        ("aider_auth", [Reply(status=401)], None, False),
        ("aider_500", [Reply(status=500)], None, False),
    ]
    for name, replies, edit_format, priced in scenarios:
        with tempfile.TemporaryDirectory(prefix="aider-record-") as tmp:
            base = Path(tmp)
            repo, worktree, env = _scratch(base)
            if priced:
                write_model_metadata(Path(env["HOME"]))
            else:
                seed_price_cache(Path(env["HOME"]))
            with FakeOpenAIChat(replies, model=MODEL) as fake:
                env.update(aider_env(fake.base_url, edit_format=edit_format))
                env.update(preset_body().get("env", {}))
                outputs = [("", _run(preset_argv("create hello.txt with a greeting"), worktree, env))]
                if name == "aider_diff":
                    outputs.append(("_followup", _run(preset_argv("now say hello again", followup=True),
                                                      worktree, env)))
            shown = [(path, "/TMP") for path in (worktree, repo, base, bindir().parent)]
            for suffix, text in outputs:
                rec.save(name + suffix, common.replace_paths(text, shown))
            shutil.rmtree(base, ignore_errors=True)
    return rec.written
