"""`log ID`: the end of an agent's log, read in bounded pieces where it lies, redacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engineharness import SECRET, MakeHarness, agent_preset, chatty

from superset_bot.agents.logs import read_chunk
from superset_bot.domain.logs import LOG_CHUNK, LOG_SHOWN
from superset_bot.engine.errors import UserError
from superset_bot.redact import Redactor
from superset_bot.store import FINISHED


async def test_the_log_is_read_whole_in_pieces_and_redacted(harness: MakeHarness) -> None:
    h = await harness({"chatty": chatty(8000), "secret": agent_preset("secret")},
                      env={"MY_API_TOKEN": SECRET})
    task = await h.engine.spawn("talk a lot", requester="U1", preset="chatty")
    assert (await h.settled(task.id)).state == FINISHED
    _, log = await h.engine.log_of(task.id)
    lines = log.text.splitlines()
    assert log.size > 2 * LOG_CHUNK and log.offset == 0 and log.end == log.size  # three pieces, all of it
    assert lines == [f"line {i:06d} " + "y" * 69 for i in range(8000)]

    secret = await h.engine.spawn("print secrets", requester="U1", preset="secret")
    assert (await h.settled(secret.id)).state == FINISHED
    _, log = await h.engine.log_of(secret.id)
    assert "the token is [redacted]" in log.text and SECRET not in log.text


async def test_a_long_log_shows_its_end_from_a_whole_line(harness: MakeHarness) -> None:
    h = await harness({"chatty": chatty(15000)})
    task = await h.engine.spawn("talk even more", requester="U1", preset="chatty")
    assert (await h.settled(task.id)).state == FINISHED
    _, log = await h.engine.log_of(task.id)
    lines = log.text.splitlines()
    assert log.offset == log.size - LOG_SHOWN and log.end == log.size
    assert lines[-1].startswith("line 014999 ")
    assert all(len(line) == 81 for line in lines)  # no half line at the start
    first = int(lines[0].split()[1])
    assert lines == [f"line {i:06d} " + "y" * 69 for i in range(first, 15000)]


async def test_no_log_before_the_agent_started(harness: MakeHarness) -> None:
    h = await harness({"chatty": chatty(1)}, max_concurrent=1)
    hold = await h.engine.spawn("first", requester="U1", preset="chatty")
    waiting = await h.engine.spawn("second", requester="U1", preset="chatty")
    with pytest.raises(UserError, match="has not started yet"):
        await h.engine.log_of(waiting.id)
    await h.settled(hold.id)
    await h.settled(waiting.id)


def test_read_chunk_cuts_at_a_whole_line_and_says_what_was_dropped(tmp_path: Path) -> None:
    log = tmp_path / "log"  # as the supervisor writes it: segments named by their first offset
    log.mkdir()
    (log / f"{0:020d}.log").write_bytes(b"one\ntwo key-123\n")
    (log / f"{100:020d}.log").write_bytes(b"late line\nlast")  # 84 bytes between were dropped by the cap
    redactor = Redactor(["key-123"])
    chunk = read_chunk(log, 0, 10, redactor)
    assert (chunk.text, chunk.offset, chunk.end, chunk.size) == ("one\n", 0, 4, 114)
    rest = read_chunk(log, chunk.end, 100, redactor)
    assert (rest.text, rest.end) == ("two [redacted]\n", 16)  # stops at the gap
    after = read_chunk(log, rest.end, 100, redactor)
    assert after.text == "[... 84 bytes of output dropped by the preset's output limit ...]\nlate line\nlast"
    assert after.end == 114  # the end: the last line as it is
    assert read_chunk(log, 999, 10, redactor).text == ""  # past the end: nothing
    assert read_chunk(tmp_path / "none", 0, 10, redactor).size == 0  # no log yet


def test_a_follower_far_behind_gets_the_last_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    (log / f"{0:020d}.log").write_bytes(b"".join(b"line %03d\n" % n for n in range(100)))  # 9 bytes a line
    chunk = read_chunk(log, 0, 50, Redactor([]), follow=True)
    assert chunk.text.splitlines()[0] == "line 095" and chunk.text.endswith("line 099\n")
    assert chunk.end == chunk.size == 900 and chunk.offset == 855
    assert read_chunk(log, 891, 50, Redactor([]), follow=True).text == "line 099\n"  # close enough: as asked


def test_whole_lines_leave_a_line_being_written_for_the_next_read(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    segment = log / f"{0:020d}.log"
    segment.write_bytes(b"first line\npartial sk-abcdefghij0123456789 still wri")
    redactor = Redactor(["sk-abcdefghij0123456789"])
    chunk = read_chunk(log, 0, 1000, redactor, follow=True, whole=True)
    assert (chunk.text, chunk.end) == ("first line\n", 11)  # the secret's line is not cut in two
    assert read_chunk(log, 11, 1000, redactor, follow=True, whole=True).text == ""  # still being written
    segment.write_bytes(b"first line\npartial sk-abcdefghij0123456789 still writing\n")
    assert read_chunk(log, 11, 1000, redactor, whole=True).text == "partial [redacted] still writing\n"
    segment.write_bytes(b"first line\nno newline at the very end")
    assert read_chunk(log, 11, 1000, redactor).text == "no newline at the very end"  # the last read takes it
