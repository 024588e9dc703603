"""A Slack outage (`make soak`'s second part, and tests/faults/test_fault_slack.py in small): Slack down
or answering 500 while tasks stream and finish; afterwards every thread must be final and the
updates must have been coalesced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from soak.bot import CHANNELS, USERS, LogWatch, Stuck, slack_ids, start_bot, wait_review
from soak.checks import check_git, check_slack, check_threads, eventually
from soak.report import Report
from superset_bot.frontends.slack.blocks import ACTION_CANCEL, ACTION_MERGE
from superset_bot.store import CANCELLED, CLOSED_STATES, FINISHED, MERGED, REVIEWABLE_STATES, RUNNING


async def run_outage(workdir: Path, *, kind: str, seconds: float, tasks: int = 6, seed: int = 1,
                     speed: float = 10.0) -> Report:
    """Slack down (`kind="down"`: every call 503) or failing (`"500"`) for `seconds` while tasks stream
    and finish, one is cancelled and one (done before the outage) merged; afterwards every thread must
    show the final state, the updates coalesced (a bounded number of chat.update calls, not one per
    progress event) and the outbox's queue bounded by the number of messages meanwhile."""
    if kind not in ("down", "500"):
        raise ValueError(f"kind is 'down' or '500', not {kind!r}")
    report = Report(f"Slack {'down (503)' if kind == 'down' else 'answering 500'} for {seconds:g} s "
                    f"while {tasks} tasks stream and finish", seed)
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    # agents stream through most of the outage, so they start before it and finish during it
    sb = await start_bot(workdir, speed=speed, concurrency=tasks + 1,
                         agent_env={"SOAK_SECONDS": str(max(2.0, seconds * 0.8))})
    try:
        tracker = sb.tracker
        ids = []
        for i in range(tasks):
            # the first is done before the outage: its review is up, and its Merge is clicked while Slack is down
            mode = "edit" if i == 0 else "stream"
            await sb.command(f"spawn [soak o{i} {mode}] work through the outage", user=USERS[i % len(USERS)],
                             channel=CHANNELS[i % len(CHANNELS)])
            ids.append(await tracker.wait(lambda i=i: tracker.by_key.get(f"o{i}"), 60, f"o{i} was not created"))
        merged_id, cancelled_id = ids[0], ids[1]
        await tracker.wait_state(merged_id, {FINISHED}, 60)
        merge_on = await wait_review(sb, merged_id, 60, eager=False)
        for task_id in ids[1:]:
            await tracker.wait_state(task_id, {RUNNING}, 60)

        async def cards_not_running() -> list[str]:
            """Streaming tasks whose root card does not show them running yet."""
            waiting = []
            for task_id in ids[1:]:
                task = await sb.store.get_task(task_id)
                where = slack_ids(sb, task) if task else None
                root = sb.fake.messages.get((where.channel, where.thread_ts)) if where else None
                if root is None or " · running · " not in (root.text or ""):
                    waiting.append(task_id)
            return waiting

        if await eventually(cards_not_running, 30):
            report.violations.append("the cards did not show the tasks running before the outage")

        assert sb.slack.outbox is not None
        outbox = sb.slack.outbox
        progress_before = tracker.progress_events
        calls_before = len(sb.fake.calls)
        if kind == "down":
            sb.fake.set_down(True)
        else:
            sb.fake.inject_faults(rate=1.0, statuses=(500,), seed=seed)
        outage_start = time.monotonic()
        most_pending = 0
        acted: dict[str, str] = {}
        while time.monotonic() - outage_start < seconds:
            most_pending = max(most_pending, outbox.pending)
            now = {i: tracker.tasks[i] for i in ids}
            if "cancel" not in acted and now[cancelled_id].state == RUNNING \
                    and time.monotonic() - outage_start > seconds / 5:
                acted["cancel"] = await sb.click(ACTION_CANCEL, cancelled_id, user=USERS[1 % len(USERS)],
                                                 channel=now[cancelled_id].channel or "", message_ts="1.0")
            if "merge" not in acted and time.monotonic() - outage_start > seconds / 3:
                acted["merge"] = await sb.click(ACTION_MERGE, merged_id, user=USERS[0], channel=now[merged_id].channel
                                                or "", message_ts=merge_on or "1.0")
            if "healthz" not in acted and time.monotonic() - outage_start > seconds / 2:
                async with sb.http.get(f"http://127.0.0.1:{sb.slack.port}/healthz") as resp:
                    acted["healthz"] = str(resp.status)
            await asyncio.sleep(0.05)
        progress_during = tracker.progress_events - progress_before
        calls_during = len(sb.fake.calls) - calls_before
        if kind == "down":
            sb.fake.set_down(False)
        else:
            sb.fake.inject_faults(rate=0)
        recovered = len(sb.fake.calls)
        recovered_at = time.monotonic()

        finals = []
        for task_id in ids:
            try:
                finals.append(await tracker.wait_state(task_id, REVIEWABLE_STATES | CLOSED_STATES, 120))
            except Stuck as exc:
                report.violations.append(str(exc))
        expected = {merged_id: MERGED, cancelled_id: CANCELLED}

        async def threads_final() -> list[str]:
            fresh = [t for t in await sb.store.list_tasks() if t.id in ids]
            problems = check_threads(sb, fresh) + check_slack(sb)
            for task in fresh:
                want = expected.get(task.id, FINISHED)
                if task.state != want:
                    problems.append(f"task {task.id} is {task.state}, expected {want} ({task.reason})")
                replies = " ".join(m.text or "" for m in sb.fake.thread(task.channel or "", slack_ids(sb, task).thread_ts))
                if want == MERGED and "Merged into" not in replies:
                    problems.append(f"task {task.id}: the 'Merged into' reply never reached the thread")
                if want == CANCELLED and "Task cancelled" not in replies:
                    problems.append(f"task {task.id}: the 'Task cancelled' reply never reached the thread")
            return problems

        # the outbox backs off up to a minute between retries of a failing update
        report.violations.extend(await eventually(threads_final, 150))
        delivered = time.monotonic() - recovered_at
        with contextlib.suppress(TimeoutError):
            await sb.settle(60)
        updates_after = sum(1 for c in sb.fake.calls[recovered:] if c.method == "chat.update" and c.status == 200)
        # what the threads need after the outage: each root, card and review once, and once more for a
        # thread whose render was held up by a retried post (it renders its later events after recovery);
        # not one per progress event
        bound = 4 * tasks
        if updates_after > bound:
            report.violations.append(f"{updates_after} chat.update calls after the outage for {tasks} tasks "
                                     f"(at most {bound} expected: updates should have been coalesced)")
        if progress_during < 3 * bound:
            report.violations.append(f"only {progress_during} progress events during the outage: the scenario "
                                     "did not stream enough to show coalescing")
        live_messages = 4 * tasks  # root, card, review and the root's reaction per task
        if most_pending > live_messages:
            report.violations.append(f"the outbox held {most_pending} pending updates during the outage "
                                     f"(more than one per message: {live_messages})")
        if acted.get("healthz") != "200":
            report.violations.append(f"/healthz answered {acted.get('healthz')} during the outage")
        if "merge" not in acted or "cancel" not in acted:
            report.violations.append(f"the scenario did not get to merge and cancel during the outage ({acted})")

        # the bot is still well: a new task goes through end to end
        await sb.command("spawn [soak after edit] after the outage", user=USERS[0], channel=CHANNELS[0])
        after_id = await tracker.wait(lambda: tracker.by_key.get("after"), 60, "no task after the outage")
        after = await tracker.wait_state(after_id, REVIEWABLE_STATES, 60)
        if after.state != FINISHED:
            report.violations.append(f"the task spawned after the outage ended {after.state}: {after.reason}")

        async def after_thread() -> list[str]:
            task = await sb.store.get_task(after_id)
            return check_threads(sb, [task] if task else [])

        report.violations.extend(await eventually(after_thread, 60))
        report.violations.extend(check_git(sb, {t.id: t for t in await sb.store.list_tasks()}))
        report.violations.extend(f"bot log: {e}" for e in watch.errors(since=recovered_at + 0.5))
        during = watch.errors(since=outage_start, until=recovered_at + 0.5)
        report.figures.update(tasks=tasks, progress_during=progress_during, calls_during=calls_during,
                              updates_after=updates_after, most_pending=most_pending, delivered_s=delivered)
        report.lines += [
            f"progress events during the outage: {progress_during}; Web API calls tried during it: {calls_during}",
            f"chat.update calls delivered after it: {updates_after} (bound {bound}); most updates pending: "
            f"{most_pending} (bound {live_messages}); threads final {delivered:.1f} s after recovery",
            "final states: " + ", ".join(f"{t.id} {t.state}" for t in finals),
            f"errors logged during the outage (expected: answers to clicks could not be sent): {len(during)}",
        ]
        report.lines += [f"  - {e}" for e in during[:5]]
    finally:
        logging.getLogger().removeHandler(watch)
        await sb.stop()
    return report

