"""Output lines published in bounded batches: what a batch keeps, what it counts as dropped, what it redacts."""

from __future__ import annotations

from superset_bot.domain.events import EngineEvent, OutputLines
from superset_bot.engine.output import OUTPUT_BATCH_MAX, OutputBatcher
from superset_bot.redact import REDACTED, Redactor
from superset_bot.store import Task

SECRET = "sk-setup-secret-42"
TASK = Task(id="t1", repo="demo", prompt="p", preset="x")


def batcher(source: str) -> tuple[OutputBatcher, list[EngineEvent]]:
    published: list[EngineEvent] = []
    return OutputBatcher(TASK, source, Redactor([SECRET]), published.append), published


def test_a_flush_publishes_the_lines_since_the_last_one_and_nothing_when_there_are_none() -> None:
    output, published = batcher("agent")
    output.flush()
    assert published == []
    output.add("one")
    output.add("two")
    output.flush()
    output.flush()
    output.add("three")
    output.flush()
    assert published == [OutputLines(TASK, ("one", "two"), "agent", 0), OutputLines(TASK, ("three",), "agent", 0)]


def test_a_batch_keeps_the_newest_lines_and_counts_the_older_ones() -> None:
    output, published = batcher("agent")
    for n in range(OUTPUT_BATCH_MAX + 5):
        output.add(f"line {n}")
    output.flush()
    (batch,) = published
    assert isinstance(batch, OutputLines)
    assert len(batch.lines) == OUTPUT_BATCH_MAX and batch.lines[0] == "line 5" and batch.dropped == 5
    output.add("next")
    output.flush()
    assert published[-1] == OutputLines(TASK, ("next",), "agent", 0)


def test_setup_output_is_redacted_here_and_agent_output_is_not_redacted_twice() -> None:
    setup, published = batcher("setup")
    setup.add(f"token={SECRET}")
    setup.flush()
    agent, published_by_agent = batcher("agent")
    agent.add(f"already redacted by the runner: {REDACTED}")
    agent.flush()
    assert published[0].lines == (f"token={REDACTED}",)
    assert published_by_agent[0].lines == (f"already redacted by the runner: {REDACTED}",)
