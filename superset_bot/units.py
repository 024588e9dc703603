"""Human-friendly durations and sizes ("30m", "4G") as used in presets and settings."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_duration(value: str | int | float) -> float:
    """Seconds from "90", "90s", "30m", "2h", "1d"; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30m or 2h, got {value!r}")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"expected a positive duration, got {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1d, got {value!r}")
    seconds = float(match.group(1)) * _DURATION_FACTORS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


def parse_size(value: str | int) -> int:
    """Bytes from "512", "200K", "4G", "1.5GiB"; binary multiples (1K = 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512M or 4G, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"expected a positive size, got {value!r}")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like 512M, 4G or 1.5GiB, got {value!r}")
    size = int(float(match.group(1)) * _SIZE_FACTORS[match.group(2).upper()])
    if size <= 0:
        raise ValueError(f"expected a positive size, got {value!r}")
    return size


def format_size(n: int | float) -> str:
    """Short human size for messages: 1.5 GiB, 320 KiB, 12 B."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def format_duration(seconds: float) -> str:
    """Short human duration: 45s, 3m 05s, 2h 10m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"
