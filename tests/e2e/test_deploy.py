"""Deployment files against the code: Slack app manifests, the systemd units, the Dockerfile and
deploy/compose.yml (the bot and worker hosts through Temporal).

The manifests must declare exactly what the bot registers and calls: every event handled is
subscribed, every scope a called method needs is granted, and no scope is declared unused.
What the code registers and calls is read from its source (Bolt registrations and Web API
method names), so adding a call or a handler without updating the manifests fails here.

PyYAML is not a dependency, so the manifests are read by a small strict YAML-subset reader
below. It refuses every construct it does not implement (flow collections, anchors, block
scalars, YAML 1.1 booleans, inline comments...), so it cannot silently read a manifest
differently from Slack's YAML parser.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import socket
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from superset_bot.config import SETTINGS, load_settings
from superset_bot.doctor import REQUIRED_BOT_SCOPES

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
SOCKET_MANIFEST = DEPLOY / "slack-app-manifest.yml"
HTTP_MANIFEST = DEPLOY / "slack-app-manifest.http.yml"
BOT_UNIT = DEPLOY / "superset-bot.service"
WORKER_UNIT = DEPLOY / "superset-worker.service"
COMPOSE = DEPLOY / "compose.yml"
EVENTS_URL = "https://YOUR-HOST/slack/events"

# Web API method -> bot scopes it needs (Slack's method reference). A method the code calls that is
# missing here fails the test: look its scope up and add it.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "auth.test": frozenset(),
    "apps.connections.open": frozenset(),  # app-level token (connections:write), not a bot scope
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.getPermalink": frozenset(),
    "reactions.add": frozenset({"reactions:write"}),
    "reactions.remove": frozenset({"reactions:write"}),
    "views.open": frozenset(),
    "views.push": frozenset(),
    "views.update": frozenset(),
    "views.publish": frozenset(),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    "users.info": frozenset({"users:read"}),
    # one scope per kind of conversation; the bot posts (and so may read back) in all four kinds
    "conversations.history": frozenset({"channels:history", "groups:history", "im:history", "mpim:history"}),
    "conversations.replies": frozenset({"channels:history", "groups:history", "im:history", "mpim:history"}),
}
# slack_sdk helpers that call several methods
SDK_HELPERS: dict[str, tuple[str, ...]] = {
    "files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal"),
}
# Events API event -> bot scopes needed to receive it
EVENT_SCOPES: dict[str, frozenset[str]] = {
    "app_mention": frozenset({"app_mentions:read"}),
    "app_home_opened": frozenset(),
    "message.channels": frozenset({"channels:history"}),
    "message.groups": frozenset({"groups:history"}),
    "message.im": frozenset({"im:history"}),
}
_METHOD_FAMILIES = "apps|auth|bookmarks|chat|conversations|emoji|files|pins|reactions|team|usergroups|users|views"
_METHOD_STRING = re.compile(rf"^(?:{_METHOD_FAMILIES})\.[A-Za-z]+(?:\.[A-Za-z]+)*$")
_METHOD_ATTR = re.compile(rf"^(?:{_METHOD_FAMILIES})_[A-Za-z0-9_]+$")


# --------------------------------------------------------------------------- a strict YAML subset


class YamlSubsetError(ValueError):
    pass


_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:[ ]+(.*))?$")
_RESERVED_PLAIN = re.compile(r"^(?:y|n|yes|no|on|off|true|false|null|~)$", re.IGNORECASE)


def _scalar(text: str, line: int) -> Any:
    text = text.strip()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"') or re.search(r'(?<!\\)"', text[1:-1]):
            raise YamlSubsetError(f"line {line}: a double-quoted string must be the whole value")
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if _RESERVED_PLAIN.match(text) or re.match(r"^[0-9.+-]", text):
        raise YamlSubsetError(f"line {line}: {text!r} is read differently by YAML versions; quote it")
    if text[0] in "[]{}&*!|>'%@`,?:#" or ": " in text or " #" in text or text.endswith(":"):
        raise YamlSubsetError(f"line {line}: {text!r} needs YAML features this reader refuses; quote it")
    return text


def load_yaml_subset(text: str) -> Any:
    """Block mappings and sequences of plain, double-quoted, boolean and integer scalars only."""
    lines: list[list[Any]] = []  # [line number, indent, content]
    for number, raw in enumerate(text.splitlines(), 1):
        content = raw.strip()
        if not content or content.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if raw[indent:indent + 1] == "\t":
            raise YamlSubsetError(f"line {number}: tabs cannot indent YAML")
        if content.startswith("---") or content.startswith("..."):
            raise YamlSubsetError(f"line {number}: one document only")
        lines.append([number, indent, content])
    if not lines:
        raise YamlSubsetError("empty document")

    def block(i: int, indent: int) -> tuple[Any, int]:
        content = lines[i][2]
        if content == "-" or content.startswith("- "):
            return sequence(i, indent)
        return mapping(i, indent)

    def mapping(i: int, indent: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        while i < len(lines) and lines[i][1] == indent:
            number, _, content = lines[i]
            match = _KEY.match(content)
            if not match:
                raise YamlSubsetError(f"line {number}: expected `key: value` or `key:`, got {content!r}")
            key, rest = match.group(1), match.group(2)
            if key in result:
                raise YamlSubsetError(f"line {number}: duplicate key {key!r}")
            i += 1
            if rest:
                result[key] = _scalar(rest, number)
            elif i < len(lines) and lines[i][1] > indent:
                result[key], i = block(i, lines[i][1])
            else:
                raise YamlSubsetError(f"line {number}: {key!r} has no value (null is refused)")
        if i < len(lines) and lines[i][1] > indent:
            raise YamlSubsetError(f"line {lines[i][0]}: unexpected indentation")
        return result, i

    def sequence(i: int, indent: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        while i < len(lines) and lines[i][1] == indent:
            number, _, content = lines[i]
            if not (content == "-" or content.startswith("- ")):
                raise YamlSubsetError(f"line {number}: expected a `- ` item, got {content!r}")
            rest = content[1:].lstrip(" ")
            if not rest:
                i += 1
                if i >= len(lines) or lines[i][1] <= indent:
                    raise YamlSubsetError(f"line {number}: empty item (null is refused)")
                item, i = block(i, lines[i][1])
            elif _KEY.match(rest):  # a mapping starting on the dash line
                lines[i] = [number, indent + len(content) - len(rest), rest]
                item, i = mapping(i, lines[i][1])
            else:
                item, i = _scalar(rest, number), i + 1
            items.append(item)
        if i < len(lines) and lines[i][1] > indent:
            raise YamlSubsetError(f"line {lines[i][0]}: unexpected indentation")
        return items, i

    if lines[0][1] != 0:
        raise YamlSubsetError(f"line {lines[0][0]}: the document must start at column 0")
    value, end = block(0, 0)
    if end != len(lines):
        raise YamlSubsetError(f"line {lines[end][0]}: unexpected dedent or content")
    return value


def test_yaml_subset_reader_reads_what_it_claims() -> None:
    doc = load_yaml_subset(
        "# comment\na:\n  b: plain text, here\n  c: \"quoted: #x\"\n  d: true\n  e: 3\n"
        "list:\n  - x:y\n  - k: v\n    k2: false\n  -\n    - nested\n"
    )
    assert doc == {"a": {"b": "plain text, here", "c": "quoted: #x", "d": True, "e": 3},
                   "list": ["x:y", {"k": "v", "k2": False}, ["nested"]]}


@pytest.mark.parametrize("text", [
    "a: [1, 2]", "a: {b: c}", "a: yes", "a: on", "a: True", "a: 1.5", "a: 2024-01-01", "a: x # comment",
    "a: b: c", "a:", "a: 1\na: 2", "a:\n\t- x", "a: &anchor x", "a: |", "a: 'single'", "a: \"x\" y",
    "a:\n  - x\n   - y", "- x\nb: 1", "a: x\n  b: y", "---\na: 1",
])
def test_yaml_subset_reader_refuses_what_it_does_not_implement(text: str) -> None:
    with pytest.raises(YamlSubsetError):
        load_yaml_subset(text)


# --------------------------------------------------------------------------- manifest schema (subset)

# Field names, types and limits from slackapi/manifest-schema (manifest.schema.json, v1), for the
# parts a bot manifest uses; unknown fields are refused there too (additionalProperties: false).
_URL = {"type": str, "pattern": r"^https?://", "max": 3500}
SCHEMA: dict[str, Any] = {
    "type": dict, "required": {"display_information"},
    "fields": {
        "_metadata": {"type": dict, "fields": {"major_version": {"type": int}, "minor_version": {"type": int}}},
        "display_information": {"type": dict, "required": {"name"}, "fields": {
            "name": {"type": str, "min": 1, "max": 35},
            "description": {"type": str, "min": 1, "max": 140},
            "background_color": {"type": str, "pattern": r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$"},
            "long_description": {"type": str, "min": 175, "max": 4000},
        }},
        "features": {"type": dict, "fields": {
            "app_home": {"type": dict, "fields": {
                "home_tab_enabled": {"type": bool}, "messages_tab_enabled": {"type": bool},
                "messages_tab_read_only_enabled": {"type": bool},
            }},
            "bot_user": {"type": dict, "required": {"display_name"}, "fields": {
                "display_name": {"type": str, "min": 1, "max": 80}, "always_online": {"type": bool},
            }},
            "slash_commands": {"type": list, "min": 1, "max": 50, "items": {
                "type": dict, "required": {"command", "description"}, "fields": {
                    "command": {"type": str, "min": 2, "max": 32, "pattern": r"^/"},
                    "url": {**_URL, "max": 3000},
                    "description": {"type": str, "min": 1, "max": 2000},
                    "usage_hint": {"type": str, "min": 1, "max": 1000},
                    "should_escape": {"type": bool},
                }}},
        }},
        "oauth_config": {"type": dict, "fields": {
            "redirect_urls": {"type": list, "items": {"type": str, "max": 2500}},
            "scopes": {"type": dict, "fields": {
                "bot": {"type": list, "max": 255, "unique": True, "items": {"type": str, "max": 50}},
                "user": {"type": list, "max": 255, "unique": True, "items": {"type": str, "max": 50}},
            }},
            "token_management_enabled": {"type": bool},
        }},
        "settings": {"type": dict, "fields": {
            "event_subscriptions": {"type": dict, "fields": {
                "request_url": _URL,
                "bot_events": {"type": list, "max": 100, "unique": True, "items": {"type": str, "max": 50}},
                "user_events": {"type": list, "max": 100, "unique": True, "items": {"type": str, "max": 50}},
            }},
            "interactivity": {"type": dict, "required": {"is_enabled"}, "fields": {
                "is_enabled": {"type": bool}, "request_url": _URL, "message_menu_options_url": _URL,
            }},
            "org_deploy_enabled": {"type": bool},
            "socket_mode_enabled": {"type": bool},
            "token_rotation_enabled": {"type": bool},
        }},
    },
}


def schema_problems(value: Any, spec: dict[str, Any], where: str = "") -> list[str]:
    kind = spec["type"]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return [f"{where or '/'}: expected {kind.__name__}, got {type(value).__name__}"]
    problems: list[str] = []
    if kind is dict:
        fields = spec.get("fields", {})
        problems += [f"{where}/{key}: unknown field" for key in value if key not in fields]
        problems += [f"{where}/{key}: required" for key in spec.get("required", ()) if key not in value]
        for key, item in value.items():
            if key in fields:
                problems += schema_problems(item, fields[key], f"{where}/{key}")
    if kind in (str, list):
        if "min" in spec and len(value) < spec["min"]:
            problems.append(f"{where}: shorter than {spec['min']}")
        if "max" in spec and len(value) > spec["max"]:
            problems.append(f"{where}: longer than {spec['max']}")
    if kind is str and "pattern" in spec and not re.match(spec["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {spec['pattern']}")
    if kind is list:
        if spec.get("unique") and len(set(map(str, value))) != len(value):
            problems.append(f"{where}: items must be unique")
        for n, item in enumerate(value):
            problems += schema_problems(item, spec["items"], f"{where}/{n}")
    return problems


# --------------------------------------------------------------------------- what the code uses


def bot_sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / "superset_bot").rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _is_bolt_app(node: ast.expr) -> bool:
    """`app` or `self.app`: the Bolt AsyncApp the Slack front end registers on."""
    return (isinstance(node, ast.Name) and node.id == "app") or (isinstance(node, ast.Attribute) and node.attr == "app")


def code_registrations() -> dict[str, set[str]]:
    """Bolt listeners: commands, events, and how many action/view/shortcut registrations there are."""
    found: dict[str, set[str]] = {"command": set(), "event": set(), "interactive": set(), "shortcut": set(),
                                  "message": set(), "options": set()}
    for path, tree in bot_sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and _is_bolt_app(node.func.value)):
                continue
            kind = node.func.attr
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if kind in ("action", "view", "block_action", "view_submission", "view_closed"):
                found["interactive"].add(where)
            elif kind in ("shortcut", "global_shortcut", "message_shortcut", "options", "message"):
                found["shortcut" if "shortcut" in kind else kind].add(where)
            elif kind in ("command", "event"):
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    raise AssertionError(f"{where}: app.{kind}() with a computed name; this test cannot "
                                         "tell what to declare in the manifests")
                found[kind].add(arg.value)
    return found


def code_methods() -> dict[str, set[str]]:
    """Web API methods named in superset_bot/ (string literals and slack_sdk method calls) -> where."""
    found: dict[str, set[str]] = {}
    for path, tree in bot_sources():
        for node in ast.walk(tree):
            names: tuple[str, ...] = ()
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _METHOD_STRING.match(node.value):
                names = (node.value,)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and _METHOD_ATTR.match(node.func.attr)):
                names = SDK_HELPERS.get(node.func.attr) or (node.func.attr.replace("_", "."),)
            for name in names:
                found.setdefault(name, set()).add(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    return found


def needed_scopes() -> dict[str, set[str]]:
    """scope -> why (method or event); fails on a method or event this test has no scope entry for."""
    why: dict[str, set[str]] = {}
    unknown = []
    for method, where in code_methods().items():
        if method not in METHOD_SCOPES:
            unknown.append(f"{method} ({', '.join(sorted(where))})")
            continue
        for scope in METHOD_SCOPES[method]:
            why.setdefault(scope, set()).add(method)
    registered = code_registrations()
    for event in registered["event"]:
        if event not in EVENT_SCOPES:
            unknown.append(f"event {event}")
            continue
        for scope in EVENT_SCOPES[event]:
            why.setdefault(scope, set()).add(f"event {event}")
    if registered["command"]:
        why.setdefault("commands", set()).update(registered["command"])
    assert not unknown, f"add these to METHOD_SCOPES / EVENT_SCOPES with the scopes Slack lists: {unknown}"
    return why


def manifest(path: Path) -> dict[str, Any]:
    data = load_yaml_subset(path.read_text())
    assert isinstance(data, dict)
    return data


def walk(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}/{key}", item
            yield from walk(item, f"{where}/{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from walk(item, f"{where}/{n}")


# --------------------------------------------------------------------------- manifests


@pytest.mark.parametrize("path", [SOCKET_MANIFEST, HTTP_MANIFEST], ids=["socket", "http"])
def test_manifest_follows_the_manifest_schema(path: Path) -> None:
    assert schema_problems(manifest(path), SCHEMA) == []


def test_the_code_scan_sees_what_the_bot_does() -> None:
    """Guards the scan itself: if it found nothing, every check below would pass vacuously."""
    methods = code_methods()
    for expected in ("chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add", "views.publish",
                     "views.open", "files.getUploadURLExternal", "auth.test"):
        assert expected in methods, expected
    registered = code_registrations()
    assert registered["command"] == {"/superset"}
    assert {"app_mention", "app_home_opened"} <= registered["event"]
    assert registered["interactive"]


@pytest.mark.parametrize("path", [SOCKET_MANIFEST, HTTP_MANIFEST], ids=["socket", "http"])
def test_manifest_declares_exactly_what_the_code_uses(path: Path) -> None:
    data = manifest(path)
    registered = code_registrations()
    events = set(data["settings"]["event_subscriptions"]["bot_events"])
    assert registered["event"] - events == set(), "events the bot handles but Slack would not send"
    assert events - registered["event"] == set(), "events subscribed that no handler uses"
    assert {c["command"] for c in data["features"]["slash_commands"]} == registered["command"]
    assert data["settings"]["interactivity"]["is_enabled"] is bool(registered["interactive"])
    assert not registered["shortcut"] and "shortcuts" not in data["features"]
    assert not registered["message"], "message listeners need message.* events and *:history scopes"

    why = needed_scopes()
    declared = data["oauth_config"]["scopes"]["bot"]
    missing = {scope: sorted(why[scope]) for scope in why if scope not in declared}
    unused = [scope for scope in declared if scope not in why]
    assert missing == {}, f"scopes the code needs but {path.name} does not declare"
    assert unused == [], f"scopes {path.name} declares but no code uses"
    assert "user" not in data["oauth_config"]["scopes"]


def test_doctor_checks_the_same_scopes_the_manifests_declare() -> None:
    declared = manifest(SOCKET_MANIFEST)["oauth_config"]["scopes"]["bot"]
    assert sorted(REQUIRED_BOT_SCOPES) == sorted(declared)


def test_app_home_and_bot_user_match_the_code() -> None:
    data = manifest(SOCKET_MANIFEST)
    features = data["features"]
    assert features["app_home"]["home_tab_enabled"] is ("app_home_opened" in code_registrations()["event"])
    assert features["app_home"]["messages_tab_enabled"] is False  # no message.im handler
    assert features["bot_user"]["always_online"] is True
    [command] = features["slash_commands"]
    assert command["should_escape"] is False
    assert command["usage_hint"].startswith("spawn ")
    settings = data["settings"]
    assert settings["org_deploy_enabled"] is False and settings["token_rotation_enabled"] is False


def test_socket_manifest_has_no_request_urls() -> None:
    data = manifest(SOCKET_MANIFEST)
    assert data["settings"]["socket_mode_enabled"] is True
    urls = [where for where, _ in walk(data) if where.endswith(("/url", "/request_url"))]
    assert urls == []


def test_http_manifest_points_every_url_at_slack_events() -> None:
    data = manifest(HTTP_MANIFEST)
    assert data["settings"]["socket_mode_enabled"] is False
    urls = {where: value for where, value in walk(data) if where.endswith(("/url", "/request_url"))}
    assert urls == {
        "/features/slash_commands/0/url": EVENTS_URL,
        "/settings/event_subscriptions/request_url": EVENTS_URL,
        "/settings/interactivity/request_url": EVENTS_URL,
    }
    runtime = (ROOT / "superset_bot" / "frontends" / "slack" / "runtime.py").read_text()
    assert 'web_app(path="/slack/events")' in runtime  # the path the bot serves in HTTP mode


def test_manifests_differ_only_in_transport() -> None:
    def without_transport(data: dict[str, Any]) -> dict[str, Any]:
        data = json.loads(json.dumps(data))
        data["settings"].pop("socket_mode_enabled")
        data["settings"]["event_subscriptions"].pop("request_url", None)
        data["settings"]["interactivity"].pop("request_url", None)
        for command in data["features"]["slash_commands"]:
            command.pop("url", None)
        return data

    assert without_transport(manifest(SOCKET_MANIFEST)) == without_transport(manifest(HTTP_MANIFEST))


# --------------------------------------------------------------------------- systemd unit


def unit_entries(path: Path = BOT_UNIT) -> list[tuple[str, str, str]]:
    entries, section = [], ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"line {number}: {line}"
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep and key.strip() and not raw.endswith("\\"), f"line {number}: {line}"
        entries.append((section, key.strip(), value.strip()))
    return entries


KNOWN_DIRECTIVES = {
    "Unit": {"Description", "Documentation", "Wants", "After", "Requires"},
    "Service": {"Type", "User", "Group", "WorkingDirectory", "EnvironmentFile", "Environment", "ExecStart",
                "Restart", "RestartSec", "TimeoutStopSec", "KillMode", "LimitNOFILE", "NoNewPrivileges",
                "PrivateTmp", "ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectControlGroups", "Delegate", "DelegateSubgroup", "RestrictSUIDSGID", "RestrictRealtime", "LockPersonality",
                "StateDirectory", "StateDirectoryMode", "ReadWritePaths"},
    "Install": {"WantedBy"},
}


def test_systemd_unit_keeps_agents_alive_across_restarts() -> None:
    entries = unit_entries()
    for section, key, _ in entries:
        assert key in KNOWN_DIRECTIVES.get(section, set()), f"[{section}] {key}: unknown (typo?)"
    service = {key: value for section, key, value in entries if section == "Service"}
    assert service["KillMode"] == "process"
    # the agents' hard limits: a delegated cgroup v2 subtree, which a read-only cgroupfs would refuse
    assert service["Delegate"] == "yes" and service["ProtectControlGroups"] == "false"
    text = BOT_UNIT.read_text()
    comment = text[:text.index("\nKillMode=process")]
    assert "detached" in comment[-800:] and "re-attaches" in comment[-800:], "explain why KillMode=process"
    # a private /tmp is deleted when the service stops, under agents that outlive it
    assert service.get("PrivateTmp", "false") == "false"


def test_systemd_unit_runs_the_bot_as_a_dedicated_user_with_safe_hardening() -> None:
    entries = unit_entries()
    service = {key: value for section, key, value in entries if section == "Service"}
    assert service["Type"] == "simple"
    assert service["User"] == "superset" and service["Group"] == "superset"
    assert service["Restart"] == "on-failure" and service["RestartSec"]
    assert service["EnvironmentFile"] == "/etc/superset-bot/env"
    workdir = service["WorkingDirectory"]
    assert service["ExecStart"] == f"{workdir}/.venv/bin/superset-bot run"
    assert service["NoNewPrivileges"] == "true"
    # strict would make repos, caches and ~ read-only unless ReadWritePaths lists them all
    assert service["ProtectSystem"] == "full"
    assert service.get("ProtectHome", "false") == "false"  # agents' logins live in ~
    assert int(service["LimitNOFILE"]) >= 4096
    assert "MemoryDenyWriteExecute" not in service  # node-based agents need a JIT
    environment = [value for section, key, value in entries if key == "Environment"]
    assert "SUPERSET_DATA_DIR=/var/lib/superset-bot" in environment
    assert service["StateDirectory"] == "superset-bot"
    assert ("Install", "WantedBy", "multi-user.target") in entries


# what may differ between the bot's unit and a worker host's: everything else (user, hardening,
# KillMode, cgroup delegation, restart policy) is the same on purpose
WORKER_UNIT_OWN = {"Description", "StateDirectory", "Environment", "EnvironmentFile", "ExecStart"}


def test_worker_unit_runs_superset_bot_worker_and_keeps_agents_alive() -> None:
    entries = unit_entries(WORKER_UNIT)
    for section, key, _ in entries:
        assert key in KNOWN_DIRECTIVES.get(section, set()), f"[{section}] {key}: unknown (typo?)"
    service = {key: value for section, key, value in entries if section == "Service"}
    workdir = service["WorkingDirectory"]
    assert service["ExecStart"] == f"{workdir}/.venv/bin/superset-bot worker"
    assert service["KillMode"] == "process"
    text = WORKER_UNIT.read_text()
    comment = text[:text.index("\nKillMode=process")]
    assert "detached" in comment[-800:] and "re-attaches" in comment[-800:], "explain why KillMode=process"
    assert service["Restart"] == "on-failure"
    # its own settings and data: a worker may share a machine with the bot, never its store
    assert service["EnvironmentFile"] == "/etc/superset-worker/env"
    assert service["StateDirectory"] == "superset-worker"
    environment = [value for section, key, value in entries if key == "Environment"]
    assert f"SUPERSET_DATA_DIR=/var/lib/{service['StateDirectory']}" in environment
    bot = {key: value for section, key, value in unit_entries() if section == "Service"}
    assert service["EnvironmentFile"] != bot["EnvironmentFile"] and service["StateDirectory"] != bot["StateDirectory"]


def test_worker_unit_is_the_bot_unit_but_for_what_makes_it_a_worker() -> None:
    def shared(path: Path) -> dict[tuple[str, str], str]:
        return {(section, key): value for section, key, value in unit_entries(path) if key not in WORKER_UNIT_OWN}

    assert shared(WORKER_UNIT) == shared(BOT_UNIT)
    assert "Documentation" in {key for _, key, _ in unit_entries(WORKER_UNIT)}


@pytest.mark.parametrize("argv", [["worker", "--help"], ["run", "--help"]])
def test_the_units_commands_exist(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from superset_bot.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert f"superset-bot {argv[0]}" in capsys.readouterr().out


# --------------------------------------------------------------------------- Dockerfile


def docker_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_dockerfile_key_lines() -> None:
    steps = docker_instructions()
    first = [rest for word, rest in steps if word == "FROM"]
    assert first == ["python:3.11-slim"]
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert re.search(r"apt-get install [^&]*\bgit\b", runs)
    assert "pip install" in runs and "/opt/venv" in runs
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [w for w, _ in steps].index("USER") < [w for w, _ in steps].index("CMD")
    assert ("VOLUME", "/data") in steps
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "SUPERSET_DATA_DIR=/data" in env
    default_port = next(s.default for s in SETTINGS if s.name == "SUPERSET_HTTP_PORT")
    assert ("EXPOSE", default_port) in steps
    assert json.loads(next(rest for word, rest in steps if word == "CMD")) == ["superset-bot", "run", "--http"]
    assert json.loads(next(rest for word, rest in steps if word == "ENTRYPOINT"))[0] == "tini"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "superset-bot" in scripts
    for word, rest in steps:
        if word == "COPY":
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def healthcheck_argv() -> list[str]:
    rest = next(rest for word, rest in docker_instructions() if word == "HEALTHCHECK")
    assert "CMD [" in rest, "HEALTHCHECK should use the exec form"
    argv = json.loads(rest[rest.index("CMD [") + 4:])
    assert argv[0] == "python" and "/healthz" in argv[-1] and "curl" not in rest
    return [sys.executable, *argv[1:]]


async def _run_healthcheck(port: int) -> tuple[int, str]:
    env = {**os.environ, "SUPERSET_HTTP_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(*healthcheck_argv(), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def test_dockerfile_healthcheck_passes_against_the_real_bot_and_fails_without_it(bot: Any) -> None:
    running = await bot(http=True)
    code, err = await _run_healthcheck(running.slack.port)
    assert code == 0, err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    code, _ = await _run_healthcheck(closed)
    assert code != 0


def test_dockerfile_installs_the_temporal_extra() -> None:
    """The image runs the bot with SUPERSET_RUNNER=temporal and `superset-bot worker`: both need the SDK."""
    runs = " ".join(rest for word, rest in docker_instructions() if word == "RUN")
    assert re.search(r"pip install [^&]*\.\[temporal\]", runs)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("temporalio") for requirement in extras["temporal"])


# --------------------------------------------------------------------------- docker compose (worker hosts)


def compose() -> dict[str, Any]:
    """deploy/compose.yml, read by the strict YAML-subset reader above (so it stays in that subset)."""
    data = load_yaml_subset(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping"
    return {key: str(value) for key, value in environment.items()}


def compose_roles(data: dict[str, Any]) -> tuple[str, list[str]]:
    """The bot's service (the image's CMD, `run --http`) and the workers' (`superset-bot worker`)."""
    ours = {name: service for name, service in data["services"].items()
            if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}
    workers = [name for name, service in ours.items() if service.get("command") == ["superset-bot", "worker"]]
    bots = [name for name in ours if name not in workers]
    assert len(bots) == 1, f"one bot service, got {bots}"
    return bots[0], workers


def test_compose_runs_postgres_temporal_the_bot_and_two_workers() -> None:
    data = compose()
    services = data["services"]
    images = {name: service.get("image", "") for name, service in services.items()}
    assert images["postgres"].startswith("postgres:")
    assert images["temporal"].startswith("temporalio/server:")
    bot, workers = compose_roles(data)
    assert len(workers) >= 2
    assert compose_env(services[bot])["SUPERSET_RUNNER"] == "temporal"
    assert "command" not in services[bot]  # the image's CMD: superset-bot run --http
    names = [compose_env(services[worker]).get("SUPERSET_WORKER_NAME") for worker in workers]
    assert all(names) and len(set(names)) == len(names), f"distinct SUPERSET_WORKER_NAME: {names}"
    # Temporal's own setup: schema before the server, the namespace before the bot and workers
    assert compose_env(services["temporal"])["POSTGRES_SEEDS"] == "postgres"
    waits = {name: service.get("depends_on", {}) for name, service in services.items()}
    assert waits["temporal"]["temporal_schema"]["condition"] == "service_completed_successfully"
    assert waits["temporal_schema"]["postgres"]["condition"] == "service_healthy"
    for name in (bot, *workers):
        assert waits[name]["temporal_namespace"]["condition"] == "service_completed_successfully"
    for name, needs in waits.items():
        assert set(needs) <= set(services), f"{name} depends on a service that is not there"


def test_compose_bot_and_workers_find_temporal_and_keep_their_own_data() -> None:
    data = compose()
    services = data["services"]
    bot, workers = compose_roles(data)
    temporal_ports = [str(port) for port in services["temporal"]["ports"]]
    assert any(port.endswith(":7233") for port in temporal_ports)
    namespace = next(s.default for s in SETTINGS if s.name == "SUPERSET_TEMPORAL_NAMESPACE")
    assert f"namespace create -n {namespace}" in services["temporal_namespace"]["command"][-1]
    data_volumes = []
    for name in (bot, *workers):
        service = services[name]
        env = compose_env(service)
        assert env["SUPERSET_TEMPORAL_ADDRESS"] == "temporal:7233", name
        assert env.get("SUPERSET_TEMPORAL_NAMESPACE", namespace) == namespace, name
        assert isinstance(service["env_file"], str) and service["env_file"].endswith(".env"), name
        mounts = [str(volume).split(":") for volume in service["volumes"]]
        [data_volume] = [source for source, target, *_ in mounts if target == "/data"]
        assert data_volume in data["volumes"], f"{name}: /data on a named volume"
        data_volumes.append(data_volume)
        # the same presets everywhere: a turn names its preset and the worker runs it
        assert "../presets:/app/presets:ro" in service["volumes"], name
        assert (DEPLOY / "../presets").resolve() == ROOT / "presets"
        assert service["build"]["context"] == ".." and (DEPLOY / ".." / service["build"]["dockerfile"]).is_file()
    assert len(set(data_volumes)) == len(data_volumes), "each worker and the bot have a data volume of their own"
    for name in workers:
        service = services[name]
        assert service["healthcheck"] == {"disable": True}, f"{name}: no /healthz on a worker"
        env = compose_env(service)
        assert "SUPERSET_REPOS" not in env and "SUPERSET_RUNNER" not in env, name
        assert service["env_file"] != services[bot]["env_file"], "workers need no Slack tokens nor SUPERSET_REPOS"
    build_args = set(services[bot]["build"]["args"])
    dockerfile_args = {rest.split("=")[0] for word, rest in docker_instructions() if word == "ARG"}
    assert build_args <= dockerfile_args


def test_compose_images_are_pinned() -> None:
    services = compose()["services"]
    versions = {}
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image}"
        if "build" not in service:
            assert re.match(r"^[0-9]", tag), f"{name}: pin {image} to a version"
        if repository in ("temporalio/server", "temporalio/admin-tools"):
            versions[name] = tag
    assert len(set(versions.values())) == 1, f"Temporal's server and admin tools of one version: {versions}"


def test_compose_settings_are_valid_for_the_bot_and_the_workers(tmp_path: Path) -> None:
    """What compose.yml sets in each container loads as settings (worker names, address, numbers)."""
    data = compose()
    bot, workers = compose_roles(data)
    for name in (bot, *workers):
        env = {**compose_env(data["services"][name]), "SUPERSET_DATA_DIR": str(tmp_path / name)}
        settings = load_settings(env, env_file=None)
        assert settings.temporal_address == "temporal:7233"
        if name in workers:
            assert settings.worker_name == env["SUPERSET_WORKER_NAME"]
        else:
            assert settings.runner == "temporal"


def deployment_texts() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## When one machine is not enough\n")
    section = readme[start:readme.index("\n## ", start + 1)]
    return {"compose.yml": COMPOSE.read_text(), WORKER_UNIT.name: WORKER_UNIT.read_text(),
            BOT_UNIT.name: BOT_UNIT.read_text(), "Dockerfile": (DEPLOY / "Dockerfile").read_text(),
            "README.md (When one machine is not enough)": section,
            "deploy/README.md": (DEPLOY / "README.md").read_text()}


def test_every_superset_variable_in_the_deployment_files_is_a_setting() -> None:
    known = {s.name for s in SETTINGS}
    for where, text in deployment_texts().items():
        named = set(re.findall(r"\bSUPERSET_[A-Z0-9_]+\b", text))
        assert named - known == set(), f"{where} names settings that do not exist"
    assert "SUPERSET_WORKER_NAME" in deployment_texts()["compose.yml"]


def test_readme_and_deploy_readme_point_at_the_worker_files() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings.index("## When one machine is not enough") < headings.index("## Deployment")
    for text in (deployment_texts()["README.md (When one machine is not enough)"], (DEPLOY / "README.md").read_text()):
        assert "superset-worker.service" in text and "compose.yml" in text
