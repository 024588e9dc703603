"""Reading hand-written JSON files and checking their fields, so that every error names the file
and the field and says what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from superset_bot.units import parse_duration, parse_size


class PresetError(ValueError):
    """A preset or workspace config that cannot be used, with a message a person can act on.

    `errors` holds one error per invalid file when `load_presets` rejects several at once.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        field: str | None = None,
        errors: Sequence[PresetError] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.field = field
        self.errors = tuple(errors)


def json_type(value: object) -> str:
    """What a decoded JSON value is, for messages: "a list", "a string (\"x\")", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({json.dumps(value)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Checker:
    """Collects the file name so every message reads `FILE: field "a.b": problem`."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)

    def error(self, field_name: str | None, problem: str) -> PresetError:
        where = f'{self.path}: field "{field_name}": ' if field_name else f"{self.path}: "
        return PresetError(where + problem, path=self.path, field=field_name)

    def obj(self, value: object, name: str | None, allowed: Sequence[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(name, f"expected an object {{...}}, got {json_type(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    full = f"{name}.{key}" if name else key
                    raise self.error(
                        full, f"unknown field; allowed here: {', '.join(allowed)} (check the spelling)"
                    )
        return value

    def string(self, value: object, name: str, *, non_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {json_type(value)}")
        if non_empty and not value.strip():
            raise self.error(name, "must not be empty")
        if "\x00" in value:
            raise self.error(name, "must not contain a NUL character")
        return value

    def strings(self, value: object, name: str, *, non_empty_items: bool = True) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(name, f"expected a list of strings, got {json_type(value)}")
        return tuple(
            self.string(item, f"{name}[{i}]", non_empty=non_empty_items) for i, item in enumerate(value)
        )

    def boolean(self, value: object, name: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {json_type(value)}")
        return value

    def choice(self, value: object, name: str, choices: Sequence[str]) -> str:
        text = self.string(value, name)
        if text not in choices:
            raise self.error(name, f"expected one of {', '.join(choices)}, got {json.dumps(text)}")
        return text

    def duration(self, value: object, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"expected a duration like 30m or 2h, got {json_type(value)}")
        try:
            return parse_duration(value)
        except ValueError:
            raise self.error(name, f"expected a duration like 30m or 2h, got {json.dumps(value)}") from None

    def size(self, value: object, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.error(name, f"expected a size like 512M or 4G, got {json_type(value)}")
        try:
            return parse_size(value)
        except ValueError:
            raise self.error(name, f"expected a size like 512M or 4G, got {json.dumps(value)}") from None

    def relative_path(self, value: object, name: str) -> str:
        text = self.string(value, name, non_empty=True)
        problem = relative_path_problem(text)
        if problem:
            raise self.error(name, problem)
        return text


def relative_path_problem(entry: str, *, allow_root: bool = False) -> str | None:
    """Why `entry` cannot name a path inside a checkout, or None when it can."""
    if not entry.strip():
        return "must not be empty"
    if "\x00" in entry:
        return "must not contain a NUL character"
    if (
        entry.startswith(("/", "\\", "~"))
        or PurePosixPath(entry).is_absolute()
        or re.match(r"^[A-Za-z]:", entry)
    ):
        return f"{json.dumps(entry)} is an absolute path; use a path relative to the repository root"
    parts = PurePosixPath(entry.replace("\\", "/")).parts
    if ".." in parts:
        return f"{json.dumps(entry)} contains a '..' component; paths must stay inside the repository"
    if not allow_root and all(part == "." for part in parts):
        return f"{json.dumps(entry)} names the whole checkout; name the files or directories to copy"
    if next((p for p in parts if p != "."), None) == ".git":
        return f"{json.dumps(entry)} is inside .git; git metadata cannot be copied or used"
    return None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def read_json(path: Path) -> object:
    """Parse a JSON file, or raise PresetError naming the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{path}: file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise PresetError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)
        ) from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read: {exc.strerror or exc}", path=str(path)) from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise PresetError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=str(path)
        ) from None
    except _DuplicateKey as exc:
        raise PresetError(
            f'{path}: field "{exc.key}" appears more than once; keep one', path=str(path), field=exc.key
        ) from None


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or below it (both already resolved)."""
    return path == root or path.is_relative_to(root)
