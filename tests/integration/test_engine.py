"""The engine end to end: real repos, real presets, real agent subprocesses, a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from support.engineharness import SECRET, MakeHarness, agent_preset

from superset_bot.domain.events import (
    EngineEvent,
    Milestone,
    OutputLines,
    ProgressChanged,
    ReviewReady,
    ReviewRefreshed,
)
from superset_bot.engine.core import Engine, UserError
from superset_bot.plugins.hooks import HookEvent, builtin_hooks
from superset_bot.store import (
    CANCELLED,
    FAILED,
    FINISHED,
    MERGED,
    REVIEWABLE_STATES,
    RUNNING,
    TIMED_OUT,
    Task,
)


async def test_spawn_review_merge_lands_on_base(harness: MakeHarness) -> None:
    h = await harness()
    task = await h.engine.spawn("add the feature; rm -rf / `x`", requester="U1")
    done = await h.settled(task.id, REVIEWABLE_STATES, timeout=60)
    assert done.state == FINISHED, done.reason
    assert h.states(task.id) == ["queued", "preparing", "running", "finished"]
    assert done.branch and done.branch.startswith(f"superset/{task.id}/add-the-feature")
    review = h.of(task.id, ReviewReady)[-1].review
    files = {f["path"] for f in review.files}
    # the agent committed one file and left one uncommitted: both are in the review
    assert files == {"src/feature.py", "NOTES.md"}
    assert review.commits == 2 and review.clean is True
    milestones = [m.kind for m in h.of(task.id, Milestone)]
    assert milestones[:3] == ["worktree_ready", "setup_done", "agent_started"] and "committed" in milestones
    assert any("agent: done" in line for e in h.of(task.id, OutputLines) for line in e.lines)

    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED and merged.closed_by == "U1"
    assert git(h.repo, "rev-parse", "main") == merged.merge_commit
    assert (h.repo / "src" / "feature.py").exists(), "the clean main checkout follows the merge"
    assert not Path(done.worktree or "").exists()
    assert git(h.repo, "branch", "--list", done.branch) == ""
    with pytest.raises(UserError, match="already merged by U1"):
        await h.engine.merge(task.id, "U2")
    actions = [(e.actor, e.action) for e in await h.store.events(task.id)]
    assert ("U1", "merged") in actions


async def test_concurrent_merge_clicks_merge_once(harness: MakeHarness) -> None:
    h = await harness()
    task = await h.engine.spawn("feature", requester="U1")
    await h.settled(task.id, {FINISHED})
    results = await asyncio.gather(*(h.engine.merge(task.id, f"U{i}") for i in range(5)), return_exceptions=True)
    merged = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, UserError)]
    assert len(merged) == 1 and len(refused) == 4
    assert git(h.repo, "rev-list", "--count", "--merges", "main") == "1"


async def test_cancel_mid_run(harness: MakeHarness) -> None:
    h = await harness({"sleep": agent_preset("sleep")})
    task = await h.engine.spawn("sleep a while", requester="U1")
    await h.engine.wait_for(task.id, {RUNNING})
    while not any(e.lines for e in h.of(task.id, OutputLines)):
        await asyncio.sleep(0.05)
    cancelled = await h.engine.cancel(task.id, "U7")
    assert cancelled.state == CANCELLED
    assert cancelled.reason == "cancelled by U7"
    assert (await h.store.events(task.id))[-1].actor == "U7"


async def test_cancel_while_queued(harness: MakeHarness) -> None:
    h = await harness({"sleep": agent_preset("sleep")}, max_concurrent=1)
    first = await h.engine.spawn("first", requester="U1")
    second = await h.engine.spawn("second", requester="U1")
    await h.engine.wait_for(first.id, {RUNNING})
    assert h.engine.queue_position(second.id) == 1
    cancelled = await h.engine.cancel(second.id, "U1")
    assert cancelled.state == CANCELLED and "before the agent started" in (cancelled.reason or "")
    assert cancelled.worktree is None
    await h.engine.cancel(first.id, "U1")


async def test_timeout_and_memory_limits(harness: MakeHarness) -> None:
    h = await harness({
        "slow": agent_preset("sleep", limits={"timeout": "1s"}),
        "hungry": agent_preset("memory", limits={"memory": "100M"}),
    })
    slow = await h.engine.spawn("slow", requester="U1", preset="slow")
    hungry = await h.engine.spawn("hungry", requester="U1", preset="hungry")
    slow_done = await h.settled(slow.id, REVIEWABLE_STATES)
    hungry_done = await h.settled(hungry.id, REVIEWABLE_STATES)
    assert slow_done.state == TIMED_OUT and "1s" in (slow_done.reason or "").replace(".0", "")
    assert hungry_done.state == FAILED and "memory" in (hungry_done.reason or "")


async def test_agent_failure_and_setup_failure(harness: MakeHarness) -> None:
    h = await harness({
        "fails": agent_preset("fail"),
        "badsetup": agent_preset("edit", setup=["echo preparing", "exit 4"]),
    })
    failing = await h.engine.spawn("fail please", requester="U1", preset="fails")
    setup = await h.engine.spawn("never runs", requester="U1", preset="badsetup")
    failing_done = await h.settled(failing.id, REVIEWABLE_STATES)
    assert failing_done.state == FAILED and failing_done.reason == "the agent exited with code 3"
    assert h.of(failing.id, ReviewReady), "a failed task still gets a review of what it left"
    setup_done = await h.settled(setup.id, {FAILED})
    assert "exit 4" in (setup_done.reason or "") and "kept" in (setup_done.reason or "")
    assert setup_done.worktree and Path(setup_done.worktree).is_dir(), "kept for inspection"
    assert "running" not in h.states(setup.id)
    setup_lines = [line for e in h.of(setup.id, OutputLines) if e.source == "setup" for line in e.lines]
    assert "preparing" in setup_lines


async def test_hanging_plugin_does_not_delay_other_tasks(harness: MakeHarness) -> None:
    hooks = builtin_hooks()

    first_ids: list[str] = []

    async def hang_on_first(event: HookEvent) -> None:
        if event.task_id == first_ids[0]:
            await asyncio.sleep(60)

    hooks.register(hang_on_first, name="hangs", events=["worktree_ready"], timeout=3.0)
    h = await harness(hooks=hooks)
    slow = await h.engine.spawn("slow one", requester="U1")
    first_ids.append(slow.id)
    fast = await h.engine.spawn("fast one", requester="U1")
    await h.settled(fast.id, REVIEWABLE_STATES)
    await h.settled(slow.id, REVIEWABLE_STATES)
    failed = [m for m in h.of(slow.id, Milestone) if m.kind == "plugin_failed"]
    assert failed and "hangs" in failed[0].text and "timed out" in failed[0].text
    assert any(e.action == "plugin_failed" for e in await h.store.events(slow.id))
    setup_of_slow = next(i for i, e in enumerate(h.events)
                         if isinstance(e, Milestone) and e.task.id == slow.id and e.kind == "setup_done")
    review_of_fast = next(i for i, e in enumerate(h.events) if isinstance(e, ReviewReady) and e.task.id == fast.id)
    assert review_of_fast < setup_of_slow, "the fast task was reviewed while the slow one's plugin hung"


async def test_twenty_tasks_never_exceed_the_limit(harness: MakeHarness, tmp_path: Path) -> None:
    log = tmp_path / "concurrency.log"
    h = await harness({"conc": agent_preset("concurrency", env={"CONCURRENCY_LOG": str(log)})}, max_concurrent=4)
    tasks = [await h.engine.spawn(f"task {i}", requester="U1") for i in range(20)]
    for task in tasks:
        done = await h.settled(task.id, REVIEWABLE_STATES, timeout=120)
        assert done.state == FINISHED, done.reason
    events = sorted(
        (float(t), 1 if kind == "start" else -1)
        for kind, t in (line.split() for line in log.read_text().splitlines())
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert len(events) == 40
    assert 1 < peak <= 4
    assert any(e for e in h.events if type(e).__name__ == "QueuePosition")


async def test_secrets_never_reach_events(harness: MakeHarness) -> None:
    h = await harness({"secret": agent_preset("secret")},
                      env={"MY_API_TOKEN": SECRET, "SLACK_BOT_TOKEN": "xoxb-bot-secret-123456"})
    task = await h.engine.spawn("print secrets", requester="U1")
    done = await h.settled(task.id, REVIEWABLE_STATES)
    assert done.state == FINISHED
    lines = [line for e in h.of(task.id, OutputLines) for line in e.lines]
    assert any("the token is [redacted]" in line for line in lines), lines
    # the bot's own token is not even in the agent's environment
    assert any("the slack one is None" in line for line in lines), lines
    dumped = repr(h.events) + repr(await h.store.events()) + repr(await h.store.list_tasks())
    assert SECRET not in dumped and "xoxb-bot-secret-123456" not in dumped


async def test_followup_reruns_in_same_worktree(harness: MakeHarness) -> None:
    h = await harness({"followup": agent_preset("followup")})
    task = await h.engine.spawn("first instruction", requester="U1")
    first = await h.settled(task.id, REVIEWABLE_STATES)
    assert first.state == FINISHED
    await h.engine.followup(task.id, "second instruction", "U1")
    second = await h.settled(task.id, {FINISHED}, timeout=60)
    second = await h.engine.get(task.id)
    assert second.runs == 2 and second.worktree == first.worktree
    runs = (Path(second.worktree or "") / "RUNS.md").read_text().splitlines()
    assert runs == ["first instruction", "second instruction"]
    assert len(h.of(task.id, ReviewReady)) == 2


async def test_restart_reattaches_running_agent(harness: MakeHarness, tmp_path: Path) -> None:
    h = await harness({"sleep": agent_preset("sleep")})
    task = await h.engine.spawn("long job", requester="U1")
    await h.engine.wait_for(task.id, {RUNNING})
    while not any(len(e.lines) for e in h.of(task.id, OutputLines)):
        await asyncio.sleep(0.05)
    await h.engine.stop()  # the bot goes away; the detached agent keeps running
    engine2 = Engine(h.settings, h.store, h.engine.presets, builtin_hooks())
    seen: list[EngineEvent] = []
    engine2.subscribe(seen.append)
    await engine2.start()
    assert engine2.is_driven(task.id), "the agent is followed again"
    while not any(isinstance(e, ProgressChanged) and e.task.id == task.id for e in seen):
        await asyncio.sleep(0.05)
    cancelled = await engine2.cancel(task.id, "U1")
    assert cancelled.state == CANCELLED
    assert any(e.action == "reattached" for e in await h.store.events(task.id))
    await engine2.stop()


@pytest.mark.parametrize("prompt, expected", [
    ("", "The prompt is empty"),
    ("x" * 60_000, "the limit is 50,000"),
])
async def test_bad_prompts(harness: MakeHarness, prompt: str, expected: str) -> None:
    h = await harness()
    with pytest.raises(UserError, match=expected):
        await h.engine.spawn(prompt, requester="U1")


async def test_long_prompt_works(harness: MakeHarness) -> None:
    h = await harness()
    task = await h.engine.spawn("y" * 40_000, requester="U1")
    done = await h.settled(task.id, REVIEWABLE_STATES)
    assert done.state == FINISHED
    assert any("prompt_chars=40000" in line for e in h.of(task.id, OutputLines) for line in e.lines)


async def test_unknown_preset_repo_and_missing_command(harness: MakeHarness) -> None:
    h = await harness({"edit": agent_preset("edit"),
                       "ghost": {"agent": {"command": ["no-such-agent-binary", "{prompt}"]}}})
    with pytest.raises(UserError, match='Unknown preset "nope". Available presets: edit, ghost'):
        await h.engine.spawn("x", requester="U1", preset="nope")
    with pytest.raises(UserError, match='Unknown repo "elsewhere". Known repos: demo'):
        await h.engine.spawn("x", requester="U1", repo="elsewhere")
    with pytest.raises(UserError, match="`no-such-agent-binary`, which is not installed or not on PATH"):
        await h.engine.spawn("x", requester="U1", preset="ghost")
    with pytest.raises(UserError, match="not a valid branch name"):
        await h.engine.spawn("x", requester="U1", base="--upload-pack=evil")
    with pytest.raises(UserError, match='"no-such-branch" is not a local branch of demo'):
        await h.engine.spawn("x", requester="U1", base="no-such-branch")
    git(h.repo, "tag", "v1")
    with pytest.raises(UserError, match="--base takes a branch name"):
        await h.engine.spawn("x", requester="U1", base="v1")


async def test_conflicting_merge_is_refused_and_task_stays_reviewable(harness: MakeHarness) -> None:
    h = await harness({"conflict": agent_preset("conflict", env={"CONFLICT_FILE": "shared.txt"})})
    task = await h.engine.spawn("change shared", requester="U1")
    await h.settled(task.id, {FINISHED})
    (h.repo / "shared.txt").write_text("someone else's version\n")
    git(h.repo, "commit", "-qam", "outside change")
    before = git(h.repo, "rev-parse", "main")
    with pytest.raises(UserError, match="conflicts with `main` in shared.txt"):
        await h.engine.merge(task.id, "U1")
    assert git(h.repo, "rev-parse", "main") == before
    assert (await h.engine.get(task.id)).state == FINISHED
    review = await h.engine.build_review(await h.engine.get(task.id))
    assert review is not None and review.clean is False and review.conflicts == ["shared.txt"]


async def test_discard_removes_worktree_and_branch(harness: MakeHarness) -> None:
    h = await harness()
    task = await h.engine.spawn("throwaway", requester="U1")
    done = await h.settled(task.id, {FINISHED})
    discarded = await h.engine.discard(task.id, "U1")
    assert discarded.state == "discarded"
    assert not Path(done.worktree or "").exists()
    assert git(h.repo, "branch", "--list", "superset/*") == ""
    with pytest.raises(UserError, match="already discarded by U1"):
        await h.engine.merge(task.id, "U2")


async def test_discard_survives_a_broken_teardown(harness: MakeHarness, make_repo: Any) -> None:
    repo = make_repo("broken", {"README.md": "x\n", ".superset/config.json": "{not json"})
    h = await harness(repo=repo)
    task = await h.engine.spawn("anything", requester="U1")
    failed = await h.settled(task.id, {FAILED})
    assert "config" in (failed.reason or "").lower()
    discarded = await h.engine.discard(task.id, "U1")
    assert discarded.state == "discarded"
    assert not Path(failed.worktree or "").exists()


async def test_merge_of_a_task_without_branch_is_refused_not_stuck(harness: MakeHarness) -> None:
    h = await harness()
    failed = await h.store.create_task(Task(id="nobrch", repo="demo", prompt="x", preset="edit", state=FAILED,
                                            reason="could not create the worktree"), "U1")
    with pytest.raises(UserError, match="has no branch to merge"):
        await h.engine.merge(failed.id, "U1")
    assert (await h.engine.get(failed.id)).state == FAILED


async def test_checks_output_is_redacted_in_the_review(harness: MakeHarness) -> None:
    h = await harness({"checked": agent_preset("edit", env={"DEPLOY_API_KEY": SECRET},
                                               checks=['echo "key=$DEPLOY_API_KEY"; exit 1'])})
    task = await h.engine.spawn("with checks", requester="U1")
    await h.settled(task.id)
    review = h.of(task.id, ReviewReady)[-1].review
    assert review.checks is not None and review.checks["passed"] is False
    assert "key=[redacted]" in review.checks["failing_tail"]
    assert SECRET not in repr(h.events) + repr(await h.store.list_tasks())


async def test_files_copied_by_the_preset_are_never_committed(harness: MakeHarness, make_repo: Any) -> None:
    repo = make_repo("withenv", {"README.md": "x\n", "shared.txt": "base\n"})
    (repo / ".env").write_text(f"API_KEY={SECRET}\n")  # untracked, and not ignored
    h = await harness({"edit": agent_preset("edit", copy=[".env"])}, repo=repo)
    task = await h.engine.spawn("uses the env", requester="U1")
    done = await h.settled(task.id, {FINISHED})
    assert (Path(done.worktree or "") / ".env").exists(), "copied for the agent"
    review = h.of(task.id, ReviewReady)[-1].review
    assert ".env" not in {f["path"] for f in review.files}
    assert ".env" not in git(h.repo, "show", "--stat", "--format=", done.branch or "")


async def test_nothing_else_touches_a_worktree_while_its_base_is_merged_in(harness: MakeHarness,
                                                                         make_repo: Any) -> None:
    # a smudge filter that sleeps makes `git merge` in the worktree take two seconds, reliably
    repo = make_repo("slow", {"README.md": "# slow\n", ".gitattributes": "*.slow filter=slow\n"})
    git(repo, "config", "filter.slow.smudge", "sleep 2; cat")
    git(repo, "config", "filter.slow.clean", "cat")
    h = await harness(repo=repo)
    task = await h.engine.spawn("add a feature", requester="U1")
    await h.settled(task.id, {FINISHED})
    (repo / "data.slow").write_text("moved on\n")
    git(repo, "add", "data.slow")
    git(repo, "commit", "-q", "-m", "base moves")

    update = asyncio.create_task(h.engine.update_from_base(task.id, "U1"))
    await asyncio.sleep(0.5)
    assert not update.done()
    for attempt in (lambda: h.engine.merge(task.id, "U1"), lambda: h.engine.discard(task.id, "U1"),
                    lambda: h.engine.followup(task.id, "more", "U1"),
                    lambda: h.engine.update_from_base(task.id, "U1")):
        with pytest.raises(UserError, match="being updated from `main` right now"):
            await attempt()
    await update
    assert (await h.engine.get(task.id)).state == FINISHED
    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED
    assert git(repo, "show", "main:data.slow") == "moved on"
    assert "VALUE = 1" in git(repo, "show", "main:src/feature.py")


async def test_a_merge_killed_inside_update_ref_leaves_no_lock_behind(harness: MakeHarness) -> None:
    h = await harness()
    task = await h.engine.spawn("add a feature", requester="U1")
    done = await h.settled(task.id, {FINISHED})
    assert done.branch
    # what `git update-ref` killed before its rename leaves: the claim with its planned merge
    # commit stored, and refs/heads/main.lock holding that commit
    tree = git(h.repo, "rev-parse", f"{done.branch}^{{tree}}")
    planned = git(h.repo, "commit-tree", tree, "-p", "main", "-p", done.branch, "-m", "planned merge")
    await h.store.transition(task.id, "merging", "U1", expect={FINISHED}, merge_commit=planned)
    lock = h.repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text(planned + "\n")
    await h.engine.stop()

    h2 = await harness(repo=h.repo)
    back = await h2.engine.get(task.id)
    assert back.state == FINISHED and "nothing was merged" in (back.reason or "")
    assert not lock.exists()
    merged = await h2.engine.merge(task.id, "U1")
    assert merged.state == MERGED and "VALUE = 1" in git(h.repo, "show", "main:src/feature.py")


async def test_a_secret_the_agent_commits_is_redacted_from_the_diff_shown(harness: MakeHarness) -> None:
    h = await harness({"leak": agent_preset("leak", env={"MY_API_TOKEN": SECRET})})
    task = await h.engine.spawn("configure the client", requester="U1")
    done = await h.settled(task.id, {FINISHED})
    assert SECRET in git(h.repo, "show", f"{done.branch}:config.py"), "the branch itself is the agent's work"
    patch = await h.engine.diff(task.id)
    assert "config.py" in patch and "API_TOKEN = " in patch and SECRET not in patch


async def test_a_merge_looks_again_at_the_open_reviews_on_its_base(harness: MakeHarness) -> None:
    """Three tasks on main: the first merges; the one touching the same file is told it no longer
    merges cleanly, and the one touching another file still merges but sees how far main moved."""
    h = await harness({"edit": agent_preset("edit"),
                       "other": agent_preset("conflict", env={"CONFLICT_FILE": "shared.txt"})})
    first = await h.engine.spawn("one way", requester="U1", preset="edit")
    second = await h.engine.spawn("another way", requester="U1", preset="edit")
    third = await h.engine.spawn("elsewhere", requester="U1", preset="other")
    for task in (first, second, third):
        assert (await h.settled(task.id)).state == FINISHED
    await h.engine.merge(first.id, "U1")
    deadline = time.monotonic() + 30
    while len(h.of(second.id, ReviewRefreshed)) + len(h.of(third.id, ReviewRefreshed)) < 2:
        assert time.monotonic() < deadline, "the open reviews were not looked at again"
        await asyncio.sleep(0.05)
    (stale,) = h.of(second.id, ReviewRefreshed)
    assert stale.previous is not None and stale.previous.clean and not stale.review.clean
    assert stale.review.conflicts == ["src/feature.py"] and stale.review.base_moved and stale.review.base_moved > 0
    (moved,) = h.of(third.id, ReviewRefreshed)
    assert moved.review.clean and moved.previous is not None and moved.previous.base_moved == 0
    assert moved.review.base_moved == stale.review.base_moved
    assert h.of(first.id, ReviewRefreshed) == [], "the merged task itself is closed"
    saved = (await h.engine.get(second.id)).review_data()
    assert saved is not None and saved["clean"] is False


async def test_follow_base_takes_in_the_base_of_a_clean_review_when_it_moves(harness: MakeHarness) -> None:
    """`"follow_base": true`: the other open review still merges cleanly, so it takes in the merged work
    at once (a new review); without the flag it only shows how far its base moved."""
    h = await harness({"edit": agent_preset("edit"),
                       "following": agent_preset("conflict", env={"CONFLICT_FILE": "shared.txt"}, follow_base=True),
                       "still": agent_preset("conflict", env={"CONFLICT_FILE": "README.md"})})
    first = await h.engine.spawn("one way", requester="U1", preset="edit")
    following = await h.engine.spawn("elsewhere", requester="U1", preset="following")
    still = await h.engine.spawn("elsewhere too", requester="U1", preset="still")
    for task in (first, following, still):
        assert (await h.settled(task.id)).state == FINISHED
    merged = await h.engine.merge(first.id, "U1")

    deadline = time.monotonic() + 30
    while len(h.of(following.id, ReviewReady)) < 2 or not h.of(still.id, ReviewRefreshed):
        assert time.monotonic() < deadline, "the base was not followed"
        await asyncio.sleep(0.05)
    updated = await h.engine.get(following.id)
    git(h.repo, "merge-base", "--is-ancestor", merged.merge_commit or "", updated.branch or "")
    events = [e.action for e in await h.store.events(following.id)]
    assert "updated_from_base" in events
    assert (await h.engine.get(still.id)).branch not in git(h.repo, "branch", "--contains", merged.merge_commit or "")
