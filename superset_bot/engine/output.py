"""The output of a task's setup commands and agent, published in bounded batches of lines."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from superset_bot.domain.events import EngineEvent, OutputLines
from superset_bot.redact import Redactor
from superset_bot.store import Task

OUTPUT_BATCH_MAX = 200  # lines kept per output event; older ones in the batch are counted as dropped


class OutputBatcher:
    """Collects output lines and publishes them in bounded batches.

    Setup output is redacted here; the agent's output arrives redacted from its runner already.
    """

    def __init__(self, task: Task, source: str, redactor: Redactor, publish: Callable[[EngineEvent], None]) -> None:
        self.redactor = redactor
        self.publish = publish
        self.task = task
        self.source = source
        self.lines: deque[str] = deque(maxlen=OUTPUT_BATCH_MAX)
        self.dropped = 0

    def add(self, line: str) -> None:
        if len(self.lines) == OUTPUT_BATCH_MAX:
            self.dropped += 1
        self.lines.append(self.redactor.redact(line) if self.source == "setup" else line)

    def flush(self) -> None:
        if self.lines or self.dropped:
            self.publish(OutputLines(self.task, tuple(self.lines), self.source, self.dropped))
            self.lines.clear()
            self.dropped = 0
