"""Fresh bases: a new task starts from the remote's tip of its base when that is newer than the
local branch, and still merges back into the local branch. Real git, a bare repo as the remote."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import RepoFactory, git
from support.engineharness import Harness, MakeHarness
from support.remotes import push_change, with_remote

from superset_bot.domain.events import Milestone, ReviewReady
from superset_bot.git.naming import POOL_PREFIX
from superset_bot.store import FINISHED, MERGED

FILES = {"README.md": "# demo\n", "shared.txt": "base version\n"}


def notes(h: Harness, task_id: str, kind: str) -> list[Milestone]:
    return [m for m in h.of(task_id, Milestone) if m.kind == kind]


async def test_a_task_starts_from_the_remote_tip_and_merges_into_local_main(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    local = git(repo, "rev-parse", "main")
    tip = push_change(clone, "upstream.txt")
    h = await harness(repo=repo)

    task = await h.engine.spawn("add the feature", requester="U1")
    done = await h.settled(task.id, {FINISHED})
    assert done.base_commit == tip and done.base_branch == "main"
    assert (Path(done.worktree or "") / "upstream.txt").read_text() == "from the remote\n"
    assert git(repo, "rev-parse", "main") == local, "the local branch is not moved by a fetch"
    assert git(repo, "rev-parse", "refs/remotes/origin/main") == tip
    ready = notes(h, task.id, "worktree_ready")[-1].text
    assert f"Started from origin/main at {tip[:8]} (1 commit ahead of local main)." in ready
    assert not notes(h, task.id, "base"), "nothing to warn about"
    review = h.of(task.id, ReviewReady)[-1].review
    assert {f["path"] for f in review.files} == {"src/feature.py", "NOTES.md"}, "the remote's commit is not its work"
    assert review.commits == 2 and review.base_commit == tip and review.base_moved == 0
    assert "upstream.txt" not in await h.engine.diff(task.id)

    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED
    assert git(repo, "rev-parse", "main") == merged.merge_commit
    git(repo, "merge-base", "--is-ancestor", tip, "main")  # local main now holds the remote's commit
    assert git(repo, "show", "main:upstream.txt") == "from the remote"
    assert "VALUE = 1" in git(repo, "show", "main:src/feature.py")
    assert git(Path(tmp_path / "remote.git"), "rev-parse", "main") == tip, "nothing is pushed"


async def test_spawns_within_fetch_every_fetch_once(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    tip = push_change(clone, "upstream.txt")
    h = await harness(repo=repo, env={"SUPERSET_FETCH_EVERY": "1h"})
    assert h.engine.bases.fetch_count("demo") == 0

    first, second = await asyncio.gather(h.engine.spawn("one", requester="U1"), h.engine.spawn("two", requester="U1"))
    done = [await h.settled(t.id, {FINISHED}) for t in (first, second)]
    assert [t.base_commit for t in done] == [tip, tip]
    assert h.engine.bases.fetch_count("demo") == 1, "both waited for the same fetch"

    later = push_change(clone, "later.txt")
    third = await h.settled((await h.engine.spawn("three", requester="U1")).id, {FINISHED})
    assert h.engine.bases.fetch_count("demo") == 1, "within SUPERSET_FETCH_EVERY: no new fetch"
    assert third.base_commit == tip != later


async def test_a_spawn_fetches_again_when_the_last_fetch_is_older_than_fetch_every(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    h = await harness(repo=repo, env={"SUPERSET_FETCH_EVERY": "200ms"})
    first = await h.settled((await h.engine.spawn("one", requester="U1")).id, {FINISHED})
    assert first.base_commit == git(repo, "rev-parse", "main")
    tip = push_change(clone, "upstream.txt")
    await asyncio.sleep(0.3)
    second = await h.settled((await h.engine.spawn("two", requester="U1")).id, {FINISHED})
    assert second.base_commit == tip
    assert h.engine.bases.fetch_count("demo") == 2


async def test_local_ahead_of_the_remote_starts_from_local(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    with_remote(tmp_path, repo)
    (repo / "local.txt").write_text("merged here, not pushed\n")
    git(repo, "add", "local.txt")
    git(repo, "commit", "-q", "-m", "a local merge nobody pushed")
    local = git(repo, "rev-parse", "main")
    h = await harness(repo=repo)

    done = await h.settled((await h.engine.spawn("feature", requester="U1")).id, {FINISHED})
    assert done.base_commit == local
    assert (Path(done.worktree or "") / "local.txt").exists()
    assert h.engine.bases.fetch_count("demo") == 1
    assert not notes(h, done.id, "base")
    assert "Started from" not in notes(h, done.id, "worktree_ready")[-1].text


async def test_diverged_starts_from_local_and_says_so(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    push_change(clone, "upstream.txt")
    (repo / "local.txt").write_text("only here\n")
    git(repo, "add", "local.txt")
    git(repo, "commit", "-q", "-m", "local only")
    local = git(repo, "rev-parse", "main")
    h = await harness(repo=repo)

    done = await h.settled((await h.engine.spawn("feature", requester="U1")).id, {FINISHED})
    assert done.base_commit == local
    [warning] = notes(h, done.id, "base")
    assert not warning.ok and "have diverged; started from local `main`" in warning.text


async def test_an_unreachable_remote_starts_from_local_and_says_why(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    local = git(repo, "rev-parse", "main")
    git(repo, "remote", "add", "origin", str(tmp_path / "missing.git"))
    h = await harness(repo=repo)

    done = await h.settled((await h.engine.spawn("feature", requester="U1")).id, {FINISHED})
    assert done.base_commit == local
    [warning] = notes(h, done.id, "base")
    assert not warning.ok
    assert warning.text.startswith("Could not fetch origin (")
    assert "does not appear to be a git repository" in warning.text
    assert warning.text.endswith(f"started from local `main` at {local[:8]}.")


async def test_credentials_in_the_remote_url_are_never_shown(
        harness: MakeHarness, make_repo: RepoFactory) -> None:
    repo = make_repo("demo", FILES)
    git(repo, "remote", "add", "origin", "https://bob:s3cret-token@127.0.0.1:9/x.git")  # nothing listens
    h = await harness(repo=repo)

    done = await h.settled((await h.engine.spawn("feature", requester="U1")).id, {FINISHED})
    assert done.base_commit == git(repo, "rev-parse", "main")
    [warning] = notes(h, done.id, "base")
    assert warning.text.startswith("Could not fetch origin (") and not warning.ok
    assert "s3cret-token" not in warning.text and "bob" not in warning.text


async def test_fetching_off_uses_local_main(harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    old = git(repo, "rev-parse", "refs/remotes/origin/main")
    push_change(clone, "upstream.txt")
    h = await harness(repo=repo, env={"SUPERSET_REMOTE": "none"})

    done = await h.settled((await h.engine.spawn("feature", requester="U1")).id, {FINISHED})
    assert done.base_commit == git(repo, "rev-parse", "main")
    assert not (Path(done.worktree or "") / "upstream.txt").exists()
    assert h.engine.bases.fetch_count("demo") == 0
    assert git(repo, "rev-parse", "refs/remotes/origin/main") == old, "nothing was fetched"
    assert not notes(h, done.id, "base")


async def test_a_base_not_on_the_remote_starts_from_local(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    with_remote(tmp_path, repo)
    git(repo, "branch", "dev")
    h = await harness(repo=repo)
    done = await h.settled((await h.engine.spawn("feature", requester="U1", base="dev")).id, {FINISHED})
    assert done.base_branch == "dev" and done.base_commit == git(repo, "rev-parse", "dev")
    assert not notes(h, done.id, "base"), "a branch only the bot's checkout has is nothing to warn about"


def spare_heads(h: Harness) -> list[str]:
    root = h.settings.worktrees_dir / "demo"
    paths = sorted(p for p in root.iterdir() if p.name.startswith(POOL_PREFIX)) if root.exists() else []
    return [git(p, "rev-parse", "HEAD") for p in paths]


async def wait_spares_at(h: Harness, sha: str, timeout: float = 30) -> None:
    async def fresh() -> None:
        while True:
            h.engine.pool.poke("demo")
            await h.engine.pool.wait_ready("demo", count=1, timeout=timeout)
            heads = spare_heads(h)
            if heads and all(head == sha for head in heads):
                return
            await asyncio.sleep(0.1)
    await asyncio.wait_for(fresh(), timeout)


async def test_the_warm_pool_follows_the_remote_tip(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    h = await harness(repo=repo, env={"SUPERSET_POOL_SIZE": "1", "SUPERSET_FETCH_EVERY": "100ms"})
    await wait_spares_at(h, git(repo, "rev-parse", "main"))

    tip = push_change(clone, "upstream.txt")
    await asyncio.sleep(0.15)  # the last fetch is older than SUPERSET_FETCH_EVERY: the spawn fetches
    first = await h.settled((await h.engine.spawn("right away", requester="U1")).id, {FINISHED})
    assert first.base_commit == tip, "a spare at the old tip is never handed out"
    assert (Path(first.worktree or "") / "upstream.txt").exists()

    await wait_spares_at(h, tip)  # the tender fetched and moved the spare to the remote's tip
    second = await h.settled((await h.engine.spawn("warm one", requester="U1")).id, {FINISHED})
    assert second.base_commit == tip
    ready = notes(h, second.id, "worktree_ready")[-1].text
    assert "(warm)" in ready and f"Started from origin/main at {tip[:8]}" in ready
    assert (Path(second.worktree or "") / "upstream.txt").exists()
    assert git(repo, "rev-parse", "main") != tip, "local main stays where it was"
