"""Delivery: `"deliver": "push"` pushes the base after a merge, never forced; the remote moving on
meanwhile is merged in and pushed once more; a conflict leaves the task merged locally and says so.
Real git, a bare repo as the remote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from support.engineharness import Harness, MakeHarness, agent_preset
from support.remotes import push_change, with_remote
from test_bases import FILES

from superset_bot.domain.events import Milestone, ReviewRefreshed
from superset_bot.presets import PresetError
from superset_bot.presets.schema import parse_preset
from superset_bot.store import FINISHED, MERGED

PUSHING = {"edit": agent_preset("edit", deliver="push")}


async def delivered(h: Harness, task_id: str, timeout: float = 30) -> Milestone:
    """The push's milestone, once it is published."""
    async def wait() -> Milestone:
        while True:
            found = [m for m in h.of(task_id, Milestone) if m.kind in ("pushed", "push_failed")]
            if found:
                return found[-1]
            await asyncio.sleep(0.02)
    return await asyncio.wait_for(wait(), timeout)


def remote_main(tmp_path: Path) -> str:
    return git(tmp_path / "remote.git", "rev-parse", "refs/heads/main")


async def merged_task(h: Harness) -> str:
    task = await h.engine.spawn("add the feature", requester="U1")
    await h.settled(task.id, {FINISHED})
    return task.id


async def test_push_lands_the_merge_on_the_remote(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    with_remote(tmp_path, repo)
    h = await harness(PUSHING, repo=repo)
    task_id = await merged_task(h)

    merged = await h.engine.merge(task_id, "U1")
    assert merged.state == MERGED
    note = await delivered(h, task_id)
    assert note.ok and note.text == f"Pushed `main` to origin ({merged.merge_commit[:7]})."
    assert remote_main(tmp_path) == merged.merge_commit == git(repo, "rev-parse", "main")
    assert git(repo, "rev-parse", "refs/remotes/origin/main") == merged.merge_commit


async def test_a_remote_that_moved_is_merged_in_and_pushed(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    h = await harness(PUSHING, repo=repo)
    task_id = await merged_task(h)
    theirs = push_change(clone, "upstream.txt")  # someone else pushed meanwhile

    merged = await h.engine.merge(task_id, "U1")
    note = await delivered(h, task_id)
    assert note.ok, note.text
    tip = remote_main(tmp_path)
    assert tip == git(repo, "rev-parse", "main") and tip != merged.merge_commit
    assert note.text == f"Pushed `main` to origin ({tip[:7]})."
    git(repo, "merge-base", "--is-ancestor", theirs, tip)
    git(repo, "merge-base", "--is-ancestor", merged.merge_commit or "", tip)
    assert git(repo, "rev-list", "--parents", "-n1", tip).split()[1:] == [merged.merge_commit, theirs]
    assert (repo / "upstream.txt").read_text() == "from the remote\n", "the base's checkout followed"
    assert (await h.engine.get(task_id)).state == MERGED


async def test_a_conflicting_remote_leaves_the_task_merged_locally_and_says_why(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    h = await harness(PUSHING, repo=repo)
    task_id = await merged_task(h)
    theirs = push_change(clone, "NOTES.md", "their notes\n")  # the task adds NOTES.md too

    merged = await h.engine.merge(task_id, "U1")
    note = await delivered(h, task_id)
    assert not note.ok
    assert note.text.startswith("Merged into local `main`, but pushing to origin failed: ")
    assert "conflict" in note.text and "NOTES.md" in note.text and "push by hand" in note.text
    assert remote_main(tmp_path) == theirs, "the remote is unchanged: nothing was forced"
    assert git(repo, "rev-parse", "main") == merged.merge_commit, "local main holds only the task's merge"
    assert (await h.engine.get(task_id)).state == MERGED
    assert any(e.action == "push_failed" for e in await h.store.events(task_id))


async def test_a_failed_push_never_shows_credentials(harness: MakeHarness, make_repo: RepoFactory) -> None:
    repo = make_repo("demo", FILES)
    git(repo, "remote", "add", "origin", "https://bob:s3cret-token@127.0.0.1:9/x.git")  # nothing listens
    h = await harness(PUSHING, repo=repo)
    task_id = await merged_task(h)

    merged = await h.engine.merge(task_id, "U1")
    note = await delivered(h, task_id)
    assert not note.ok and note.text.startswith("Merged into local `main`, but pushing to origin failed: ")
    assert "s3cret-token" not in note.text and "bob" not in note.text
    assert (await h.engine.get(task_id)).state == MERGED and git(repo, "rev-parse", "main") == merged.merge_commit


async def test_no_remote_configured_says_so(harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    with_remote(tmp_path, repo)
    before = remote_main(tmp_path)
    h = await harness(PUSHING, repo=repo, env={"SUPERSET_REMOTE": "none"})
    task_id = await merged_task(h)

    await h.engine.merge(task_id, "U1")
    note = await delivered(h, task_id)
    assert not note.ok and "no remote is set for demo" in note.text
    assert remote_main(tmp_path) == before


async def test_local_delivery_pushes_nothing(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    with_remote(tmp_path, repo)
    before = remote_main(tmp_path)
    h = await harness(repo=repo)
    task_id = await merged_task(h)

    merged = await h.engine.merge(task_id, "U1")
    assert merged.state == MERGED
    await asyncio.sleep(0.3)
    assert remote_main(tmp_path) == before
    assert not [m for m in h.of(task_id, Milestone) if m.kind in ("pushed", "push_failed")]


MINIMAL = {"agent": {"command": ["agent", "{prompt}"]}}


def test_preset_deliver_field() -> None:
    assert parse_preset("p", MINIMAL).deliver == "", "none named: the repo's delivery, else local"
    for deliver in ("local", "push", "pr"):
        assert parse_preset("p", {**MINIMAL, "deliver": deliver}).deliver == deliver
    with pytest.raises(PresetError, match=r'field "deliver": expected one of local, push, pr, got "ftp"'):
        parse_preset("p", {**MINIMAL, "deliver": "ftp"})
    with pytest.raises(PresetError, match=r'field "deliver": expected a string'):
        parse_preset("p", {**MINIMAL, "deliver": True})


async def test_the_remote_commits_merged_in_before_a_push_turn_open_reviews_stale(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    """The push's catch-up merge moves the base too: an open review its new commits conflict with is
    looked at again, not left offering a clean Merge."""
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    h = await harness({**PUSHING, "shared": agent_preset("conflict", env={"CONFLICT_FILE": "shared.txt"})},
                      repo=repo)
    pushed_id = await merged_task(h)
    other = await h.engine.spawn("change the shared file", requester="U1", preset="shared")
    await h.settled(other.id, {FINISHED})
    saved = (await h.engine.get(other.id)).review_data()
    assert saved is not None and saved["clean"] is True
    push_change(clone, "shared.txt", "the remote's version\n")

    await h.engine.merge(pushed_id, "U1")
    assert (await delivered(h, pushed_id)).ok

    async def stale() -> ReviewRefreshed:
        while True:
            found = [e for e in h.of(other.id, ReviewRefreshed) if not e.review.clean]
            if found:
                return found[-1]
            await asyncio.sleep(0.02)

    refreshed = await asyncio.wait_for(stale(), 30)
    assert refreshed.review.conflicts == ["shared.txt"]
    stored = (await h.engine.get(other.id)).review_data()
    assert stored is not None and stored["clean"] is False
