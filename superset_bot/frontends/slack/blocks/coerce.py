"""Defensive reading of loosely typed values (task fields, progress and review dicts).

Each reader returns a safe value of the type asked for, or a neutral one, and never raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def num(value: object) -> float | None:
    """A finite, sane number or None (bools, strings, NaN and absurd magnitudes are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= 1e15 else None


def as_int(value: object) -> int | None:
    number = num(value)
    return None if number is None else int(number)


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []
