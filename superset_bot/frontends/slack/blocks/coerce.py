"""Defensive reading of loosely typed values (task fields, review dicts, Slack payloads).

Each reader returns a safe value of the type asked for, or a neutral one, and never raises. A task's
progress needs none of them: `ProgressSnapshot` (domain/progress.py) is already sane.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from superset_bot.domain.progress import sane_number as num  # one rule for what a number is

__all__ = ["as_int", "as_list", "as_map", "as_str", "num"]


def as_int(value: object) -> int | None:
    number = num(value)
    return None if number is None else int(number)


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []
