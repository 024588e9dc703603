"""The spawn modal and the parsing of its submission."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from support.blocksamples import FUZZ, HOSTILE, PING, json_values, texts

from superset_bot.frontends.slack.blocks.limits import validate_view
from superset_bot.frontends.slack.blocks.modal import (
    SPAWN_CALLBACK,
    parse_spawn_submission,
    spawn_metadata,
    spawn_modal,
)


def submit(view: dict[str, Any], **typed: Any) -> dict[str, Any]:
    """What Slack sends in view_submission: the state of every input, with the person's entries."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        el = block["element"]
        entry = typed.get(block["block_id"], ...)
        if el["type"] == "static_select":
            chosen = el.get("initial_option")
            if entry is not ...:
                chosen = next(o for o in el["options"] if o["value"] == entry)
            values[block["block_id"]] = {el["action_id"]: {"type": "static_select", "selected_option": chosen}}
        else:
            value = el.get("initial_value") if entry is ... else entry
            values[block["block_id"]] = {el["action_id"]: {"type": "plain_text_input", "value": value}}
    return {"id": "V1", "type": "modal", "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"], "state": {"values": values}}


def test_spawn_modal_shape() -> None:
    view = spawn_modal(["web", "api"], {"claude": "Claude Code, headless", "aider": "Aider"}, repo="api",
                         preset=None, base=None, channel="C123", private_metadata_extra={"thread_ts": "1.2"})
    assert validate_view(view) == []
    assert view["callback_id"] == SPAWN_CALLBACK and view["title"]["text"] == "New agent task"
    assert view["submit"]["text"] == "Spawn"
    assert json.loads(view["private_metadata"]) == {"thread_ts": "1.2", "channel": "C123"}
    assert spawn_metadata(view) == {"thread_ts": "1.2", "channel": "C123"}
    repo, preset, base, prompt = view["blocks"]
    assert repo["element"]["initial_option"]["value"] == "api"
    assert "initial_option" not in preset["element"]
    assert preset["element"]["options"][0]["description"]["text"] == "Claude Code, headless"
    assert base["optional"] is True and base["element"]["placeholder"]["text"] == "default branch"
    assert prompt["element"]["multiline"] is True and "optional" not in prompt


def test_parse_spawn_submission_round_trip() -> None:
    view = spawn_modal(["web", "api"], {"claude": "Claude Code"}, repo="web", preset="claude", base="develop",
                         channel="C123")
    options, prompt, errors = parse_spawn_submission(
        submit(view, prompt="  fix the flaky test\nin tests/test_auth.py  "))
    assert errors == {}
    assert options == {"repo": "web", "preset": "claude", "base": "develop"}
    assert prompt == "fix the flaky test\nin tests/test_auth.py"
    options, _, errors = parse_spawn_submission(submit(view, repo="api", base=None, prompt="go"))
    assert errors == {} and options == {"repo": "api", "preset": "claude", "base": None}


def test_parse_spawn_submission_errors() -> None:
    view = spawn_modal(["web"], {"claude": "x"}, repo=None, preset=None, base=None, channel="C1")
    options, prompt, errors = parse_spawn_submission(submit(view, prompt="   "))
    assert set(errors) == {"repo", "preset", "prompt"} and prompt == ""
    assert options == {"repo": None, "preset": None, "base": None}
    _, _, errors = parse_spawn_submission(submit(view, repo="web", preset="claude", prompt="x", base="my branch"))
    assert set(errors) == {"base"}
    for odd in ({}, {"state": None}, {"state": {"values": []}}, {"state": {"values": {"repo": {"repo": None}}}},
                {"state": {"values": {"repo": {"repo": {"selected_option": {"value": 5}}}}}}):
        _, _, errors = parse_spawn_submission(odd)
        assert {"repo", "preset", "prompt"} <= set(errors)
    assert spawn_metadata({"private_metadata": "{oops"}) == {}


@FUZZ
@given(json_values)
def test_parse_spawn_submission_never_raises(view: Any) -> None:
    options, prompt, errors = parse_spawn_submission({"state": {"values": view}})
    assert set(options) == {"repo", "preset", "base"} and isinstance(prompt, str) and isinstance(errors, dict)


def test_spawn_modal_hostile_and_large() -> None:
    repos = [f"repo{i}" for i in range(300)] + ["<!channel>" * 20, "x" * 500]
    presets = {f"p{i}": HOSTILE * 10 for i in range(150)}
    view = spawn_modal(repos, presets, repo="repo250", preset="p149", base="b" * 1000, channel="C1",
                         private_metadata_extra={"blob": "x" * 10_000}, prompt="<!channel>" * 1000)
    assert validate_view(view) == []
    repo_el, preset_el = view["blocks"][0]["element"], view["blocks"][1]["element"]
    assert len(repo_el["options"]) == 100 and repo_el["initial_option"]["value"] == "repo250"
    assert preset_el["initial_option"]["value"] == "p149"
    assert len(view["private_metadata"]) <= 3000 and json.loads(view["private_metadata"])["channel"] == "C1"
    for text in texts(view["blocks"]):
        assert not PING.search(text)
    empty = spawn_modal([], {}, repo=None, preset=None, base=None, channel="C1")
    assert validate_view(empty) == []
    _, _, errors = parse_spawn_submission(submit(empty, repo="web", preset="claude", prompt="go"))
    assert errors == {}


def test_the_form_starts_a_race_too() -> None:
    view = spawn_modal(["web"], {"claude": "Claude", "codex": "Codex"}, repo="web", preset="claude", base=None,
                       channel="C1", max_attempts=4, attempts="3")
    assert validate_view(view) == []
    ids = [b["block_id"] for b in view["blocks"]]
    assert ids == ["repo", "preset", "base", "attempts", "race_presets", "prompt"]
    attempts = view["blocks"][3]["element"]
    assert [o["value"] for o in attempts["options"]] == ["1", "2", "3", "4"]
    assert attempts["initial_option"]["value"] == "3"
    options, _, errors = parse_spawn_submission(submit(view, prompt="go"))
    assert errors == {} and options["attempts"] == "3" and "presets" not in options
    values = submit(view, prompt="go")
    values["state"]["values"]["race_presets"] = {"race_presets": {"type": "multi_static_select", "selected_options": [
        {"value": "claude"}, {"value": "codex"}]}}
    options, _, errors = parse_spawn_submission(values)
    assert errors == {} and options["presets"] == "claude,codex"
    values["state"]["values"]["race_presets"]["race_presets"]["selected_options"] = [{"value": "codex"}]
    _, _, errors = parse_spawn_submission(values)
    assert set(errors) == {"race_presets"}
    single = spawn_modal(["web"], {"claude": "Claude"}, repo="web", preset="claude", base=None, channel="C1")
    assert [b["block_id"] for b in single["blocks"]] == ["repo", "preset", "base", "prompt"], "no race: no fields"
    plain = parse_spawn_submission(submit(single, prompt="go"))[0]
    assert "attempts" not in plain and "presets" not in plain
