"""Task lines and the `list` answer."""

from __future__ import annotations

from support.blocksamples import HOSTILE, NOW, PING, assert_safe, dumps, hostile_task, make_task

from superset_bot.frontends.slack.blocks.lists import task_line, task_list


def test_task_line() -> None:
    line = task_line(make_task(prompt="x" * 100 + "\nmore"), "https://x.slack.com/archives/C1/p1", now=NOW)
    assert line.startswith(":runner: `k3x9qa` *running* · web · 5m 00s ago · “" + "x" * 59 + "…”")
    assert line.endswith(" · <https://x.slack.com/archives/C1/p1|thread>")
    assert "thread" not in task_line(make_task(), None, now=NOW)
    assert not PING.search(task_line(hostile_task(), "https://x|<!channel>", now=NOW))


def test_task_list() -> None:
    empty = task_list([], {}, title="Tasks", now=NOW)
    assert "No tasks running or awaiting review." in dumps(empty.blocks) and empty.text
    tasks = [make_task(id=f"t{i:05d}") for i in range(100)]
    r = task_list(tasks, {"t00000": "https://x.slack.com/archives/C1/p1"}, title="Tasks", now=NOW)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "`t00039`" in everything and "`t00040`" not in everything
    assert "…and 60 more" in everything and "|thread>" in everything
    hostile = task_list([hostile_task()] * 100, {hostile_task().id: "https://x.slack.com/" + "a&" * 400},
                          title=HOSTILE * 10, now=NOW)
    assert_safe(hostile)
    assert "more" in dumps(hostile.blocks)
