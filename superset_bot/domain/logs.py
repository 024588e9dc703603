"""A piece of an agent's log, as read for a person who asked for it: redacted text and where it lies."""

from __future__ import annotations

from dataclasses import dataclass

LOG_CHUNK = 256 * 1024  # bytes one read returns at most (a worker host answers in pieces this size)
LOG_SHOWN = 1024 * 1024  # bytes of a log shown at most: its end, where an agent says how it ended


@dataclass
class LogChunk:
    text: str  # redacted; whole lines unless the read reached the end
    offset: int  # where in the log file it starts (bytes)
    end: int  # where the next read starts
    size: int  # the log's size when it was read
    where: str = ""  # the file, on whichever machine holds it
