"""The command grammar: options, ids, and a readable answer for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superset_bot.domain.commands import Command, CommandError, parse


@pytest.mark.parametrize("text, expected", [
    ("", Command("help")),
    ("spawn fix the flaky login test", Command("spawn", text="fix the flaky login test")),
    ("spawn --repo web --preset codex --base dev fix it",
     Command("spawn", text="fix it", options={"repo": "web", "preset": "codex", "base": "dev"})),
    ("spawn repo=web preset=codex fix it", Command("spawn", text="fix it", options={"repo": "web", "preset": "codex"})),
    ("spawn --repo=web set base=10 in the config",
     Command("spawn", text="set base=10 in the config", options={"repo": "web"})),
    ("spawn -- --help is broken", Command("spawn", text="--help is broken")),
    ("spawn", Command("spawn", text="")),
    ("STATUS K3X9QA", Command("status", task_id="k3x9qa")),
    ("followup k3x9qa also add tests", Command("followup", task_id="k3x9qa", text="also add tests")),
    ("prune --dry-run", Command("prune", dry_run=True)),
    ("list", Command("list")),
    ("race 3 fix it", Command("race", text="fix it", count=3)),
    ("race --repo web 2 --preset codex fix it", Command("race", text="fix it", count=2,
                                                       options={"repo": "web", "preset": "codex"})),
    ("race --presets=claude-code,codex,aider 3 fixes for 2 bugs",
     Command("race", text="fixes for 2 bugs", count=3, options={"presets": "claude-code,codex,aider"})),
    ("race", Command("race", text="")),
    ("race ² fixes", Command("race", text="² fixes")),
    ("race -- 2 bugs to fix", Command("race", text="2 bugs to fix")),
    ("race 3 -- 2 bugs to fix", Command("race", text="2 bugs to fix", count=3)),
])
def test_parse(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text, problem, usage", [
    ("deploy now", 'Unknown command "deploy"', "Commands:"),
    ("status", "`status` needs a task id", "Usage: `/superset status ID`"),
    ("merge ../../etc", "is not a task id", "Usage: `/superset merge ID`"),
    ("spawn --repo", "Option --repo needs a value", "Usage: `/superset spawn"),
    ("spawn --repo --preset x fix", "Option --repo needs a value", "Usage:"),
    ("spawn --colour blue fix", 'Unknown option "--colour"', "Usage:"),
    ("spawn --repo a --repo b fix", "given twice", "Usage:"),
    ("list everything", "takes no arguments", "Usage: `/superset list`"),
    ("followup k3x9qa", "needs the instructions", "Usage: `/superset followup ID TEXT`"),
    ("cancel k3x9qa now", 'Unexpected "now"', "Usage: `/superset cancel ID`"),
    ("race --presets claude-code, codex fix it", "is not a list of presets", "Usage: `/superset race"),
    ("race --preset a --presets a,b fix", "not both", "Usage: `/superset race"),
    ("race 2 --repo a --repo b fix", "given twice", "Usage: `/superset race"),
    ("race --repo a 2 --repo b fix", "given twice", "Usage: `/superset race"),
    ("race 500 fix", "far too many", "Usage: `/superset race"),
    ("race --colour x 2 fix", 'Unknown option "--colour" (options: --repo, --preset, --base, --presets)', "Usage:"),
])
def test_errors_say_what_and_show_usage(text: str, problem: str, usage: str) -> None:
    with pytest.raises(CommandError) as err:
        parse(text)
    assert problem in str(err.value) and usage in str(err.value)


@given(st.text(max_size=300))
def test_any_input_parses_or_gives_a_readable_error(text: str) -> None:
    try:
        command = parse(text)
    except CommandError as exc:
        assert str(exc).strip() and ("Usage:" in str(exc) or "Commands:" in str(exc))
    else:
        assert command.name
