"""Pull-request delivery (`"deliver": "pr"`) against a fake GitHub API on 127.0.0.1 whose repository is
the bare repo the bot pushes to: opening, checks turning green or red, Fix CI, Merge through the API,
a pull request merged or closed on the website, Discard, follow-ups, refusals, restarts, rate limits.
Real git, real agents, real SQLite, real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RepoFactory, git
from support.engineharness import Harness, MakeHarness, agent_preset
from support.fakegithub import FakeGitHub
from support.remotes import push_change, with_remote
from test_bases import FILES

from superset_bot.composition import build_service
from superset_bot.domain.events import Milestone, ReviewRefreshed
from superset_bot.domain.race import RaceState
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.service import Caller
from superset_bot.service.results import RaceStarted
from superset_bot.store import DISCARDED, FINISHED, MERGED, MERGING, QUEUED, RUNNING

TOKEN = "ghp_pr_delivery_test_0123456789"
SLUG = "acme/demo"


def pr_presets(**extra: Any) -> dict[str, dict[str, Any]]:
    return {"edit": agent_preset("edit", deliver="pr", **extra)}


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub.start(token=TOKEN) as gh:
        yield gh


def gh_env(gh: FakeGitHub, **more: str) -> dict[str, str]:
    return {"SUPERSET_GITHUB_TOKEN": TOKEN, "SUPERSET_GITHUB_API_URL": gh.url,
            "SUPERSET_GITHUB_REPOS": f"demo={SLUG}", "SUPERSET_PR_POLL_EVERY": "0.1s", **more}


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20, what: str = "") -> Any:
    """Wait until `check()` gives something true; return it."""
    async def wait() -> Any:
        while True:
            got = await check()
            if got:
                return got
            await asyncio.sleep(0.03)
    try:
        return await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or check}") from None


def notes(h: Harness, task_id: str, kind: str) -> list[Milestone]:
    return [m for m in h.of(task_id, Milestone) if m.kind == kind]


async def note(h: Harness, task_id: str, kind: str, timeout: float = 20) -> Milestone:
    async def found() -> Milestone | None:
        got = notes(h, task_id, kind)
        return got[-1] if got else None
    result: Milestone = await until(found, timeout, f"a {kind} milestone")
    return result


async def setup(harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, gh: FakeGitHub,
                presets: dict[str, dict[str, Any]] | None = None, **env: str) -> tuple[Harness, Path]:
    repo = make_repo("demo", FILES)
    clone = with_remote(tmp_path, repo)
    gh.add_repo(SLUG, tmp_path / "remote.git")
    h = await harness(presets or pr_presets(), repo=repo, env=gh_env(gh, **env))
    return h, clone


async def opened(h: Harness, gh: FakeGitHub, prompt: str = "add the feature") -> tuple[str, int]:
    """Spawn a task and wait for its pull request; (task id, PR number)."""
    task = await h.engine.spawn(prompt, requester="U1")
    await h.settled(task.id, {FINISHED})
    await note(h, task.id, "pr_opened")
    pull = await h.store.get_pull(task.id)
    assert pull is not None
    return task.id, pull.number


def remote_tip(tmp_path: Path, branch: str = "main") -> str:
    return git(tmp_path / "remote.git", "rev-parse", f"refs/heads/{branch}")


async def test_a_review_opens_a_pull_request_shown_on_the_review(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)

    task = await h.engine.get(task_id)
    pr = github.pull(SLUG, number)
    assert pr["state"] == "open" and pr["head"]["ref"] == task.branch and pr["base"]["ref"] == "main"
    assert pr["title"] == "add the feature" and task_id in pr["body"]
    assert remote_tip(tmp_path, task.branch or "") == git(h.repo, "rev-parse", task.branch or ""), "branch pushed"
    opened_note = notes(h, task_id, "pr_opened")[-1]
    assert opened_note.text.startswith(f"Opened pull request {SLUG}#{number} from `{task.branch}` into `main`")
    assert pr["html_url"] in opened_note.text

    async def shown() -> Any:
        refreshed = [e for e in h.of(task_id, ReviewRefreshed) if e.review.pull]
        return refreshed[-1] if refreshed else None
    refreshed = await until(shown, what="the review showing the pull request")
    assert refreshed.review.pull["number"] == number and refreshed.review.pull["url"] == pr["html_url"]
    saved = (await h.engine.get(task_id)).review_data() or {}
    assert saved["pull"]["number"] == number, "the stored review carries it too"
    assert github.requests and all(r.status != 401 for r in github.requests), "the token went with each request"


async def test_checks_turning_red_then_green_show_live_and_fix_ci_sends_their_output(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github, pr_presets(env={"AGENT_MODE": "edit"}))
    task_id, number = await opened(h, github)
    head = github.pull(SLUG, number)["head"]["sha"]

    github.set_check_run(SLUG, head, "lint", "in_progress")
    github.set_status(SLUG, head, "ci/tests", "pending", "running")

    async def pull_state(state: str) -> Any:
        pull = await h.store.get_pull(task_id)
        return pull if pull is not None and pull.checks and str(pull.checks_state) == state else None
    pending = await until(lambda: pull_state("pending"), what="pending checks")
    assert {c.name for c in pending.checks} == {"lint", "ci/tests"}

    github.set_check_run(SLUG, head, "lint", "completed", "failure", title="2 lint errors",
                         summary="src/feature.py:2: E225 missing whitespace around operator")
    github.set_status(SLUG, head, "ci/tests", "success", "12 passed")
    await until(lambda: pull_state("failure"), what="failed checks")
    failed = await note(h, task_id, "pr_checks")
    assert not failed.ok and failed.text.startswith(f"Checks failed on {SLUG}#{number}: `lint`")
    review = (await h.engine.get(task_id)).review_data() or {}
    assert review["pull"]["checks_state"] == "failure", "the review shows it"

    await h.engine.fix_ci(task_id, "U1")
    events = await h.store.events(task_id)
    sent = [e for e in events if "followup" in e.detail]
    assert sent and "E225 missing whitespace" in sent[-1].detail["followup"]
    assert "ci/tests" not in sent[-1].detail["followup"], "only the failing checks"
    await h.settled(task_id, {FINISHED})

    # the follow-up's commit went to the same pull request; checks start over on the new head
    updated = await note(h, task_id, "pr_updated")
    assert updated.text == f"Pushed the new commits to pull request {SLUG}#{number}."
    task = await h.engine.get(task_id)
    new_head = git(h.repo, "rev-parse", task.branch or "")
    assert (await github.fetch_pull(SLUG, number))["head"]["sha"] == new_head != head
    assert len(github.repo(SLUG).pulls) == 1, "no second pull request"

    seen = len(notes(h, task_id, "pr_checks"))
    github.set_check_run(SLUG, new_head, "lint", "completed", "success")
    github.set_status(SLUG, new_head, "ci/tests", "success")
    await until(lambda: pull_state("success"), what="passing checks")

    async def told() -> Any:
        return len(notes(h, task_id, "pr_checks")) > seen
    await until(told, what="the thread told the checks passed")
    passed = notes(h, task_id, "pr_checks")[-1]
    assert passed.ok and passed.text.startswith(f"Checks passed on {SLUG}#{number} (")


async def test_merge_merges_the_pull_request_on_github_once(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github, pr_presets(merge="squash"))
    task_id, number = await opened(h, github)
    task = await h.engine.get(task_id)

    results = await asyncio.gather(*(h.engine.merge(task_id, "U1") for _ in range(3)), return_exceptions=True)
    merged = [r for r in results if not isinstance(r, BaseException)]
    assert len(merged) == 1 and merged[0].state == MERGED, results
    pr = github.pull(SLUG, number)
    assert pr["merged"] is True and pr["merged_by"]["login"] == github.login
    tip = remote_tip(tmp_path)
    assert merged[0].merge_commit == pr["merge_commit_sha"] == tip
    assert git(tmp_path / "remote.git", "rev-list", "--count", "--no-merges", f"{tip}^..{tip}") == "1", "squashed"
    merges = [r for r in github.requests if r.method == "PUT" and r.path.endswith("/merge")]
    assert len(merges) == 1, "merged once however many clicks"

    async def local_followed() -> bool:  # the ref, then the base's checkout
        return git(h.repo, "rev-parse", "main") == tip and (h.repo / "src" / "feature.py").is_file()
    await until(local_followed, what="local main and its checkout fast-forwarded to the merged pull request")

    async def branch_gone() -> bool:
        return task.branch not in git(tmp_path / "remote.git", "branch", "--format=%(refname:short)").split()
    await until(branch_gone, what="the pull request's branch deleted on GitHub")
    assert not Path(task.worktree or "").exists()


async def test_a_pull_request_merged_on_the_website_merges_the_task(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    commit = await github.merge_on_website(SLUG, number, by="octocat")

    merged = await h.engine.wait_for(task_id, {MERGED}, timeout=20)
    assert merged.closed_by == "octocat on GitHub" and merged.merge_commit == commit

    async def removed() -> bool:
        return not Path(merged.worktree or "").exists()
    await until(removed, what="the worktree removed")
    pull = await h.store.get_pull(task_id)
    assert pull is not None and str(pull.state) == "merged"


async def test_a_pull_request_closed_on_the_website_discards_the_task(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    github.close_on_website(SLUG, number, by="octocat")

    done = await h.engine.wait_for(task_id, {DISCARDED}, timeout=20)
    assert done.closed_by == "octocat on GitHub"
    closed = await note(h, task_id, "pr_closed")
    assert closed.text == f"Pull request {SLUG}#{number} was closed on GitHub without merging; the task is discarded."
    assert not [r for r in github.requests if r.method == "PATCH"], "the bot did not close it again"


async def test_discard_closes_the_pull_request_and_deletes_its_branch(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    branch = (await h.engine.get(task_id)).branch

    done = await h.engine.discard(task_id, "U1")
    assert done.state == DISCARDED
    pr = github.pull(SLUG, number)
    assert pr["state"] == "closed" and pr["merged"] is False
    assert branch not in git(tmp_path / "remote.git", "branch", "--format=%(refname:short)").split()


async def test_a_merge_github_refuses_is_said_in_the_thread_and_changes_nothing(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, clone = await setup(harness, make_repo, tmp_path, github,
                           pr_presets(env={"AGENT_MODE": "conflict", "CONFLICT_FILE": "shared.txt"}))
    task_id, number = await opened(h, github)
    push_change(clone, "shared.txt", "someone else's version\n")  # main moved on GitHub, in the same lines
    before = remote_tip(tmp_path)

    with pytest.raises(Exception, match="Nothing was merged") as refused:
        await h.engine.merge(task_id, "U1")
    assert "GitHub will not merge it" in str(refused.value)
    told = await note(h, task_id, "merge_refused")
    assert not told.ok and told.text.startswith("Merge asked by U1 was refused: GitHub will not merge it")
    task = await h.engine.get(task_id)
    assert task.state == FINISHED and task.merge_commit is None
    assert remote_tip(tmp_path) == before and github.pull(SLUG, number)["state"] == "open"


async def test_a_push_to_the_pull_request_since_is_never_merged_unseen(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, clone = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    branch = (await h.engine.get(task_id)).branch or ""
    git(clone, "fetch", "-q", "origin", f"{branch}:{branch}")
    git(clone, "checkout", "-q", branch)
    push_change(clone, "theirs.txt")  # a person pushes to the PR's branch (not main)
    git(clone, "push", "-q", "origin", f"HEAD:{branch}")
    theirs = git(clone, "rev-parse", "HEAD")

    with pytest.raises(Exception, match="nothing was forced"):
        await h.engine.merge(task_id, "U1")
    assert remote_tip(tmp_path, branch) == theirs, "their commit is still there"
    assert github.pull(SLUG, number)["merged"] is False
    assert (await h.engine.get(task_id)).state == FINISHED


async def test_merging_one_pull_request_updates_the_conflicting_review_without_a_click(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github,
                       pr_presets(env={"AGENT_MODE": "conflict", "CONFLICT_FILE": "shared.txt"}))
    first, _ = await opened(h, github, "first change")
    second, _ = await opened(h, github, "second change")
    assert ((await h.engine.get(second)).review_data() or {})["clean"] is True

    await h.engine.merge(first, "U1")

    async def stale() -> Any:
        found = [e for e in h.of(second, ReviewRefreshed) if not e.review.clean]
        return found[-1] if found else None
    refreshed = await until(stale, timeout=10, what="the second review turning to a conflict")
    assert refreshed.review.conflicts == ["shared.txt"]


async def test_a_restarted_bot_follows_the_open_pull_requests(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    await h.engine.stop()
    await h.store.close()
    commit = await github.merge_on_website(SLUG, number, by="octocat")  # while the bot is down

    h2 = await harness(pr_presets(), repo=h.repo, env=gh_env(github))
    merged = await h2.engine.wait_for(task_id, {MERGED}, timeout=20)
    assert merged.merge_commit == commit and merged.closed_by == "octocat on GitHub"


async def test_polling_asks_conditionally_and_waits_out_a_spent_rate_limit(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    def looks() -> list[Any]:
        return [r for r in github.requests if r.method == "GET" and r.path.endswith(f"/pulls/{number}")]

    async def a_few() -> bool:  # looks at an unchanged pull request
        return len(looks()) >= 4
    await until(a_few, what="a few looks")
    looks = looks()
    assert all(r.headers.get("if-none-match") for r in looks[1:]), "every look after the first is conditional"
    assert any(r.status == 304 for r in looks), "and answered 304 Not Modified"
    remaining = github.rate_remaining
    await asyncio.sleep(0.5)
    assert github.rate_remaining >= remaining - 2, "304s cost nothing of the rate limit"

    github.exhaust_rate_limit(reset_in=1.5)
    head = github.pull(SLUG, number)["head"]["sha"]
    github.set_check_run(SLUG, head, "build", "completed", "failure", summary="boom")
    await asyncio.sleep(0.5)
    refused = [r for r in github.requests if r.status == 403]
    assert len(refused) <= 1, "one 403 at most: then the bot waits for the reset"

    async def failed() -> Any:
        pull = await h.store.get_pull(task_id)
        return pull is not None and str(pull.checks_state) == "failure"
    await until(failed, timeout=10, what="the checks seen once the limit reset")


async def test_without_a_token_the_thread_says_why_and_merge_refuses_plainly(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github, SUPERSET_GITHUB_TOKEN="")
    task = await h.engine.spawn("add the feature", requester="U1")
    await h.settled(task.id, {FINISHED})
    failed = await note(h, task.id, "pr_failed")
    assert "SUPERSET_GITHUB_TOKEN" in failed.text and not failed.ok
    with pytest.raises(Exception, match="SUPERSET_GITHUB_TOKEN"):
        await h.engine.merge(task.id, "U1")
    assert (await h.engine.get(task.id)).state == FINISHED
    assert not github.requests


async def test_the_token_never_reaches_the_agent(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github, pr_presets(env={"AGENT_MODE": "secret"}))
    task = await h.engine.spawn("print secrets", requester="U1")
    await h.settled(task.id)
    env = h.engine.env.for_task(await h.engine.get(task.id), h.engine.presets["edit"])
    assert "SUPERSET_GITHUB_TOKEN" not in env and TOKEN not in json.dumps(env)
    assert h.engine.env.redactor.redact(f"x {TOKEN} y") == "x [redacted] y"


async def gated_follow_up(harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path,
                          github: FakeGitHub) -> tuple[Harness, str, int, Path]:
    """A task with an open pull request whose follow-up runs until `gate` (the last value) is touched."""
    gate = tmp_path / "gate"
    h, _ = await setup(harness, make_repo, tmp_path, github,
                       {"edit": agent_preset("gated", deliver="pr", env={"GATE_FILE": str(gate)})})
    task_id, number = await opened(h, github)
    await h.engine.followup(task_id, "one more, through the gate", "U1")
    await h.engine.wait_for(task_id, {QUEUED, RUNNING}, timeout=10)
    return h, task_id, number, gate


async def test_a_pull_request_merged_on_the_website_during_a_follow_up_keeps_what_it_lacks(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    """Merged on the website while a follow-up runs: the task waits for the agent, is merged then, and
    the follow-up's commit (not in what was merged) stays on the kept branch, and the thread says so."""
    h, task_id, number, gate = await gated_follow_up(harness, make_repo, tmp_path, github)
    commit = await github.merge_on_website(SLUG, number)
    await asyncio.sleep(0.5)  # the watcher sees the merge meanwhile
    assert (await h.engine.get(task_id)).state in {QUEUED, RUNNING}, "a running agent is not pulled from under"
    gate.touch()

    merged = await h.engine.wait_for(task_id, {MERGED}, timeout=30)
    assert merged.closed_by == "octocat on GitHub" and merged.merge_commit == commit
    kept = await note(h, task_id, "pr_left_out")
    assert kept.text == (f"{SLUG}#{number} was merged without the task's latest commits; the branch "
                         f"`{merged.branch}` is kept.")
    tip = git(h.repo, "rev-parse", merged.branch or "")
    assert "one more, through the gate" in git(h.repo, "show", f"{tip}:RUNS.md")
    report = await Housekeeper(h.engine).prune(actor="U1")
    assert git(h.repo, "rev-parse", merged.branch or "") == tip, f"the kept branch survives a prune: {report.cleaned}"
    assert not notes(h, task_id, "pr_updated"), "nothing was pushed to a merged pull request"


async def test_a_pull_request_closed_on_the_website_during_a_follow_up_keeps_the_follow_ups_work(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    """Closed on the website while a follow-up runs: the task is discarded when the agent ends, but the
    follow-up's commit, which nobody has seen, stays on the branch and the thread says where."""
    h, task_id, number, gate = await gated_follow_up(harness, make_repo, tmp_path, github)
    github.close_on_website(SLUG, number, by="octocat")
    await asyncio.sleep(0.5)  # the watcher sees the close meanwhile
    assert (await h.engine.get(task_id)).state in {QUEUED, RUNNING}, "a running agent is not pulled from under"
    gate.touch()

    done = await h.engine.wait_for(task_id, {DISCARDED}, timeout=30)
    closed = await note(h, task_id, "pr_closed")
    assert closed.text.endswith(f"The branch `{done.branch}` is kept: it has commits the pull request did not "
                                "(a follow-up that ended after the close).")
    tip = git(h.repo, "rev-parse", done.branch or "")
    assert "one more, through the gate" in git(h.repo, "show", f"{tip}:RUNS.md")
    assert not Path(done.worktree or "/none").exists()
    report = await Housekeeper(h.engine).prune(actor="U1")  # leftovers and orphans are cleaned, not this
    assert git(h.repo, "rev-parse", done.branch or "") == tip, report.cleaned


async def requests_stop(gh: FakeGitHub) -> None:
    """The bot stops asking: no request within a few poll periods."""
    await asyncio.sleep(0.4)
    before = len(gh.requests)
    await asyncio.sleep(0.6)
    assert len(gh.requests) == before, [r.path for r in gh.requests[before:]]


async def test_a_merge_without_an_answer_is_looked_up_and_said_plainly(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    """A broken answer to the merge (502): the bot asks GitHub what happened before it says anything;
    here nothing was merged, the thread says so, and a second click merges."""
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    github.fail_next("PUT", r"/pulls/\d+/merge$", 502)

    with pytest.raises(Exception, match="Nothing was merged"):
        await h.engine.merge(task_id, "U1")
    told = await note(h, task_id, "merge_refused")
    assert told.text.startswith("Merge asked by U1 failed:") and not told.ok
    assert (await h.engine.get(task_id)).state == FINISHED and github.pull(SLUG, number)["merged"] is False
    put = max(i for i, r in enumerate(github.requests) if r.method == "PUT")
    assert github.requests[put].status == 502
    assert any(r.method == "GET" and r.path.endswith(f"/pulls/{number}") for r in github.requests[put:]), "it asked"

    merged = await h.engine.merge(task_id, "U1")
    assert merged.state == MERGED and github.pull(SLUG, number)["merged"] is True


async def test_a_merge_github_cannot_settle_is_said_stuck_once_not_every_reconcile(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    """GitHub stops answering right after a merge was asked: the claim stays until GitHub tells what
    happened, reconcile looks at it each cycle, and the thread is told it is stuck once."""
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    github.fail_next("PUT", r"/pulls/\d+/merge$", 502)
    github.fail_next("GET", rf"/pulls/{number}$", 502, times=1000)
    with pytest.raises(Exception, match="GitHub did not answer the merge"):
        await h.engine.merge(task_id, "U1")
    assert (await h.engine.get(task_id)).state == MERGING
    for _ in range(3):  # three reconcile cycles while GitHub is still down
        await h.engine.settle_stuck(await h.engine.get(task_id), 3600)
        assert (await h.engine.get(task_id)).state == MERGING, "nothing is decided without GitHub's word"
    assert len(notes(h, task_id, "stuck")) == 1
    assert len([e for e in await h.store.events(task_id) if e.action == "stuck"]) == 3, "each cycle is logged"


async def test_a_discard_right_after_the_review_leaves_no_pull_request_open(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task = await h.engine.spawn("add the feature", requester="U1")
    await h.engine.wait_for(task.id, {FINISHED}, timeout=60)  # the review and its pull request are on the way
    await h.engine.discard(task.id, "U1")
    await h.engine.wait_idle()
    await requests_stop(github)
    assert all(p["state"] == "closed" for p in github.repo(SLUG).pulls.values())


async def test_a_pruned_task_lets_its_pull_request_be_and_stops_following_it(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    task_id, number = await opened(h, github)
    await h.engine.prune(task_id, "U1", "idle for 72h")
    told = await note(h, task_id, "pr_let_go")
    assert told.text.startswith(f"Pull request {SLUG}#{number} stays open on GitHub")
    await requests_stop(github)
    assert github.pull(SLUG, number)["state"] == "open"


async def test_a_push_to_the_remote_by_someone_else_turns_a_review_stale_without_a_click(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    """Delivered to the remote, a review is measured against the remote's tip: when a fetch brings a
    commit that conflicts with it (pushed by a person, not merged by the bot), the review says so."""
    h, clone = await setup(harness, make_repo, tmp_path, github,
                           pr_presets(env={"AGENT_MODE": "conflict", "CONFLICT_FILE": "shared.txt"}),
                           SUPERSET_FETCH_EVERY="0.01s")
    task_id, _ = await opened(h, github)
    assert ((await h.engine.get(task_id)).review_data() or {})["clean"] is True
    local = git(h.repo, "rev-parse", "main")
    push_change(clone, "shared.txt", "someone else's version\n")

    await h.engine.bases.start_point("demo", "main")  # a fetch, as a spawn or the warm pool makes

    async def stale() -> Any:
        found = [e for e in h.of(task_id, ReviewRefreshed) if not e.review.clean]
        return found[-1] if found else None
    refreshed = await until(stale, timeout=10, what="the review turning to a conflict")
    assert refreshed.review.conflicts == ["shared.txt"] and refreshed.review.base_moved == 1
    assert git(h.repo, "rev-parse", "main") == local, "the local branch itself is not moved by a fetch"


async def test_update_from_base_takes_in_what_the_remote_holds(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    """A pull request merges into the remote's branch: updating it from its base takes in a person's
    push there, not only what the local branch holds."""
    h, clone = await setup(harness, make_repo, tmp_path, github, SUPERSET_FETCH_EVERY="0.01s")
    task_id, _ = await opened(h, github)
    theirs = push_change(clone, "upstream.txt")
    await h.engine.bases.start_point("demo", "main")  # a fetch brings it
    await h.engine.update_from_base(task_id, "U1")
    task = await h.engine.get(task_id)
    git(h.repo, "merge-base", "--is-ancestor", theirs, task.branch or "")
    assert (Path(task.worktree or "") / "upstream.txt").read_text() == "from the remote\n"
    assert git(h.repo, "log", "-1", "--format=%s", task.branch or "").startswith("Merge branch 'origin/main' into")


async def race_of_two(h: Harness) -> tuple[Any, list[Any]]:
    """A race of two attempts delivered as pull requests, both opened."""
    started = await build_service(h.engine).command(Caller("U1"), "race 2 add the feature")
    assert isinstance(started, RaceStarted), started
    for attempt in started.attempts:
        await h.settled(attempt.id, {FINISHED})
        await note(h, attempt.id, "pr_opened")
    return started.race, list(started.attempts)


async def test_picking_an_attempt_merges_its_pull_request_and_closes_the_others(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    race, (a, b) = await race_of_two(h)
    pulls = {t.id: await h.store.get_pull(t.id) for t in (a, b)}
    merged = await h.engine.merge(a.id, "U1")
    assert merged.state == MERGED
    assert github.pull(SLUG, pulls[a.id].number)["merged"] is True  # type: ignore[union-attr]
    loser = github.pull(SLUG, pulls[b.id].number)  # type: ignore[union-attr]
    assert loser["state"] == "closed" and loser["merged"] is False
    assert (await h.engine.get(b.id)).state == DISCARDED
    assert (await h.engine.get_race(race.id))[0].state == RaceState.PICKED


async def test_an_attempt_merged_on_the_website_picks_it(
        harness: MakeHarness, make_repo: RepoFactory, tmp_path: Path, github: FakeGitHub) -> None:
    h, _ = await setup(harness, make_repo, tmp_path, github)
    race, (a, b) = await race_of_two(h)
    pull = await h.store.get_pull(b.id)
    assert pull is not None
    await github.merge_on_website(SLUG, pull.number, by="octocat")
    await h.engine.wait_for(a.id, {DISCARDED}, timeout=30)

    async def picked() -> bool:
        return (await h.engine.get_race(race.id))[0].state == RaceState.PICKED
    await until(picked, what="the race picked")
    final, _ = await h.engine.get_race(race.id)
    assert final.winner == b.id and final.closed_by == "octocat on GitHub"
