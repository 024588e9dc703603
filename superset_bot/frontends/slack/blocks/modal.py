"""The spawn modal (the form for a new task) and the reading of its submission into options and a prompt."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from superset_bot.frontends.slack.blocks.coerce import as_map
from superset_bot.frontends.slack.blocks.kit import Block, plain
from superset_bot.frontends.slack.blocks.limits import (
    INPUT_VALUE_MAX,
    OPTION_DESCRIPTION_MAX,
    OPTION_TEXT_MAX,
    OPTION_VALUE_MAX,
    PRIVATE_METADATA_MAX,
    SELECT_OPTIONS,
)
from superset_bot.frontends.slack.blocks.text import esc_line

SPAWN_CALLBACK = "spawn_modal"
# Input block ids of the spawn modal; each block's element uses the same string as action_id.
SPAWN_REPO, SPAWN_PRESET, SPAWN_BASE, SPAWN_PROMPT = "repo", "preset", "base", "prompt"
SPAWN_ATTEMPTS, SPAWN_RACE_PRESETS = "attempts", "race_presets"  # a race from the same form


def _option(text: object, value: str, description: object = None) -> Block:
    option: Block = {"text": plain(esc_line(text, OPTION_TEXT_MAX) or "?"), "value": value}
    desc = esc_line(description, OPTION_DESCRIPTION_MAX) if description else ""
    if desc:
        option["description"] = plain(desc)
    return option


def _select_block(block_id: str, label: str, placeholder: str, options: list[Block],
                  initial: str | None, hint: str | None = None) -> Block:
    if options:
        element: Block = {
            "type": "static_select",
            "action_id": block_id,
            "placeholder": plain(placeholder),
            "options": options,
        }
        chosen = next((o for o in options if o["value"] == initial), None)
        if chosen is not None:
            element["initial_option"] = chosen
    else:  # nothing configured: let the person type a name and get a clear error back
        element = {"type": "plain_text_input", "action_id": block_id, "placeholder": plain(placeholder)}
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label), "element": element}
    if hint:
        block["hint"] = plain(hint)
    return block


def _select_options(items: Iterable[tuple[str, object]], initial: str | None) -> list[Block]:
    """At most 100 options, the initial one always among them; values Slack cannot hold are skipped."""
    options: list[Block] = []
    seen: set[str] = set()
    for value, description in items:
        if not isinstance(value, str) or not value or len(value) > OPTION_VALUE_MAX or value in seen:
            continue
        seen.add(value)
        options.append(_option(value, value, description))
    index = next((i for i, o in enumerate(options) if o["value"] == initial), -1)
    if index >= SELECT_OPTIONS:
        options.insert(0, options.pop(index))  # the preselected one must survive the cut
    return options[:SELECT_OPTIONS]


def spawn_modal(repos: Sequence[str], presets: Mapping[str, str], *, repo: str | None, preset: str | None,
                base: str | None, channel: str, private_metadata_extra: Mapping[str, Any] | None = None,
                prompt: str | None = None, max_attempts: int = 1, attempts: object = None,
                race_presets: object = None) -> dict[str, Any]:
    """The `views.open` modal for a new task, prefilled with whatever the command already said. With
    `max_attempts` above 1 it can start a race too: N attempts of the preset, or one per preset chosen."""
    repo_options = _select_options(((r, None) for r in repos if isinstance(r, str)), repo)
    preset_options = _select_options(
        ((name, desc) for name, desc in as_map(presets).items() if isinstance(name, str)), preset
    )
    base_element: Block = {
        "type": "plain_text_input",
        "action_id": SPAWN_BASE,
        "placeholder": plain("default branch"),
    }
    if isinstance(base, str) and base.strip():
        base_element["initial_value"] = base.strip()[:255]
    prompt_element: Block = {
        "type": "plain_text_input",
        "action_id": SPAWN_PROMPT,
        "multiline": True,
        "focus_on_load": True,
        "placeholder": plain("e.g. Fix the flaky login test in tests/test_auth.py"),
    }
    if isinstance(prompt, str) and prompt.strip():
        prompt_element["initial_value"] = prompt.strip()[:INPUT_VALUE_MAX]
    blocks: list[Block] = [
        _select_block(SPAWN_REPO, "Repository", "Choose a repository", repo_options, repo),
        _select_block(SPAWN_PRESET, "Preset", "Choose a preset", preset_options, preset,
                      hint="Which agent runs, and how its worktree is prepared."),
        {
            "type": "input",
            "block_id": SPAWN_BASE,
            "optional": True,
            "label": plain("Base branch"),
            "hint": plain("The branch to start from and merge back into. Empty: the repository's default."),
            "element": base_element,
        },
        {
            "type": "input",
            "block_id": SPAWN_PROMPT,
            "label": plain("What should the agent do?"),
            "element": prompt_element,
        },
    ]
    if max_attempts > 1:
        blocks[3:3] = _race_blocks(max_attempts, attempts, preset_options, race_presets)
    meta: dict[str, Any] = {**dict(as_map(private_metadata_extra)), "channel": channel}
    try:
        metadata = json.dumps(meta, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        metadata = ""
    if not metadata or len(metadata) > PRIVATE_METADATA_MAX:
        metadata = json.dumps({"channel": channel if isinstance(channel, str) else ""}, separators=(",", ":"))
        if len(metadata) > PRIVATE_METADATA_MAX:
            metadata = "{}"
    return {
        "type": "modal",
        "callback_id": SPAWN_CALLBACK,
        "title": plain("New agent task"),
        "submit": plain("Spawn"),
        "close": plain("Cancel"),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def _race_blocks(max_attempts: int, attempts: object, preset_options: list[Block],
                 race_presets: object) -> list[Block]:
    counts = [_option("1 (one task)" if n == 1 else f"{n} attempts (a race)", str(n)) for n in range(1, max_attempts + 1)]
    initial = str(attempts) if str(attempts) in {o["value"] for o in counts} else "1"
    blocks: list[Block] = [{
        "type": "input", "block_id": SPAWN_ATTEMPTS, "label": plain("Attempts"),
        "hint": plain("More than one: that many agents try the same prompt from the same commit, side by side; "
                      "you compare them in one thread and pick one to merge."),
        "element": {"type": "static_select", "action_id": SPAWN_ATTEMPTS, "options": counts,
                    "initial_option": next(o for o in counts if o["value"] == initial)},
    }]
    if len(preset_options) > 1:
        blocks.append({
            "type": "input", "block_id": SPAWN_RACE_PRESETS, "optional": True,
            "label": plain("Or race these presets"),
            "hint": plain("Two or more: one attempt per preset (the preset and attempts above are then not used)."),
            "element": {"type": "multi_static_select", "action_id": SPAWN_RACE_PRESETS,
                        "placeholder": plain("Choose presets"), "options": preset_options[:SELECT_OPTIONS],
                        "max_selected_items": max_attempts},
        })
        named = [n for n in str(race_presets or "").split(",") if n]
        chosen = [o for o in preset_options[:SELECT_OPTIONS] if o["value"] in named][:max_attempts]
        if chosen:  # `race --presets a,b` without a prompt: the form keeps them
            blocks[-1]["element"]["initial_options"] = chosen
    return blocks


def spawn_metadata(view: Mapping[str, Any]) -> dict[str, Any]:
    """The private_metadata a spawn modal was opened with ({} when missing or unreadable)."""
    raw = as_map(view).get("private_metadata")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def _submitted(values: Mapping[str, Any], block_id: str) -> str | None:
    block = as_map(values.get(block_id))
    element = block.get(block_id)
    if not isinstance(element, Mapping):
        element = next((v for v in block.values() if isinstance(v, Mapping)), {})
    selected = element.get("selected_option")
    if isinstance(selected, Mapping):
        value = selected.get("value")
    else:
        value = element.get("value")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


_BAD_REF = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|//")


def parse_spawn_submission(view: Mapping[str, Any]) -> tuple[dict[str, str | None], str, dict[str, str]]:
    """(options {repo, preset, base}, prompt, errors by block_id) from a spawn modal's view_submission.

    Never raises: anything missing or odd becomes an error message for `response_action: errors`.
    """
    values = as_map(as_map(as_map(view).get("state")).get("values"))
    repo = _submitted(values, SPAWN_REPO)
    preset = _submitted(values, SPAWN_PRESET)
    base = _submitted(values, SPAWN_BASE)
    prompt = _submitted(values, SPAWN_PROMPT) or ""
    errors: dict[str, str] = {}
    if repo is None:
        errors[SPAWN_REPO] = "Choose the repository the agent should work in."
    if preset is None:
        errors[SPAWN_PRESET] = "Choose a preset."
    if base is not None and (len(base) > 255 or base.startswith(("-", "/", ".")) or base.endswith(
            (".", "/", ".lock")) or _BAD_REF.search(base)):
        errors[SPAWN_BASE] = "That is not a valid branch name. Leave it empty to use the default branch."
    if not prompt:
        errors[SPAWN_PROMPT] = "Tell the agent what to do."
    options: dict[str, str | None] = {"repo": repo, "preset": preset, "base": base}
    attempts = _submitted(values, SPAWN_ATTEMPTS)
    raced = _selected_many(values, SPAWN_RACE_PRESETS)
    if len(raced) == 1:
        errors[SPAWN_RACE_PRESETS] = "Choose two or more presets to race, or none."
    elif raced:
        options["presets"] = ",".join(raced)
    elif attempts and attempts.isdigit() and int(attempts) > 1:
        options["attempts"] = attempts
    return options, prompt, errors


def _selected_many(values: Mapping[str, Any], block_id: str) -> list[str]:
    element = as_map(as_map(values.get(block_id)).get(block_id))
    chosen = element.get("selected_options")
    if not isinstance(chosen, list):
        return []
    return [v for o in chosen if isinstance(o, Mapping) and isinstance(v := o.get("value"), str) and v]


# ----------------------------------------------------------------------------- App Home
