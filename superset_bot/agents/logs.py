"""Reading an agent's log in bounded pieces, redacted, on the machine that holds it.

A run's log is the supervisor's segmented log (agents/supervisor.py `SegmentLog`): a folder of
segments named by the offset of their first byte, where the output cap may have dropped the middle.
Offsets are those of the agent's raw output, so a piece read from one goes on where the last ended.
"""

from __future__ import annotations

import os
from pathlib import Path

from superset_bot.domain.logs import LOG_CHUNK, LogChunk
from superset_bot.redact import Redactor

SEGMENT_NAME_LEN = 24  # "00000000000000000123.log"


def _segments(log_dir: Path) -> list[tuple[int, Path, int]]:
    """(first offset, path, size) of each segment, in order; [] when there is no log (yet)."""
    try:
        names = os.listdir(log_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        if len(name) == SEGMENT_NAME_LEN and name.endswith(".log") and name[:20].isdigit():
            path = log_dir / name
            found.append((int(name[:20]), path, path.stat().st_size))
    return sorted(found)


def _line_after(segments: list[tuple[int, Path, int]], pos: int) -> int:
    """The offset of the first whole line at or after `pos` (in the segment holding it)."""
    for start, path, length in segments:
        if start <= pos < start + length:
            with open(path, "rb") as segment:
                segment.seek(pos - start)
                if pos == start:
                    return pos
                segment.seek(pos - start - 1)
                rest = segment.read(start + length - pos + 1)
            newline = rest.find(b"\n")
            return pos - 1 + newline + 1 if newline >= 0 else start + length
    return pos


def read_chunk(log_dir: Path, offset: int, limit: int, redactor: Redactor, follow: bool = False,
               whole: bool = False) -> LogChunk:
    """At most `limit` bytes (LOG_CHUNK at most) of the run's log from `offset`, cut after the last
    whole line unless the end was reached, redacted; a part the output cap dropped is said in one line.
    `follow`: a reader further behind than `limit` gets the last whole lines within `limit` instead.
    `whole`: a line still being written at the end is left for the next read too (so no secret is cut).
    Blocking: run it off the event loop. Raises OSError."""
    limit = max(1, min(limit, LOG_CHUNK))
    segments = _segments(log_dir)
    size = segments[-1][0] + segments[-1][2] if segments else 0
    pos = max(0, min(offset, size))
    if follow and pos < size - limit:
        pos = _line_after(segments, size - limit)
    begin = pos
    data = bytearray()
    note = ""
    for start, path, length in segments:
        if start + length <= pos:
            continue
        if start > pos:  # segments between were dropped by the output cap
            if data:
                break  # the next piece says so
            note = f"[... {start - pos:,} bytes of output dropped by the preset's output limit ...]\n"
            pos = start
        with open(path, "rb") as segment:
            segment.seek(pos - start)
            got = segment.read(limit - len(data))
        data += got
        pos += len(got)
        if len(data) >= limit:
            break
    if (pos < size or whole) and b"\n" in data and not data.endswith(b"\n"):
        keep = data.rindex(b"\n") + 1
        pos -= len(data) - keep
        del data[keep:]
    elif whole and pos == size and data and not data.endswith(b"\n") and len(data) < limit:
        pos -= len(data)  # one unfinished line and nothing else: wait for its end
        data.clear()
    text = note + redactor.redact(data.decode("utf-8", errors="replace"))
    return LogChunk(text, begin, pos, size, str(log_dir))
