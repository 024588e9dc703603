"""The soak (`make soak`: many tasks with random fates and Slack faults) and the Slack outage scenario.

Everything is real except Slack: the bot (SlackBot over HTTP, Engine, Store) runs against
tests/support/fakeslack/ over real HTTP, tasks arrive as signed slash commands, buttons as signed
block_actions and follow-ups as signed app_mention events, agents are real processes
(soak/agent.py) in real git worktrees. Slack's budgets are scaled by `speed` on *both* sides (the
fake's rate limits and the bot's outbox), so the pressure on the outbox stays Slack's while 100
tasks fit in a few minutes instead of the hour Slack's real Tier 3 budget would take.

`run_soak` spawns N tasks, acts on them at random (cancel, merge, discard, follow-up, double
clicks) while the fake answers a fraction of Web API calls with 429 or 500, then checks
invariants: every task in the final state its scenario allows; database, git and worktrees agree;
each thread's root, status card, reaction and review show the task's state; Slack rejected no
payload; the outbox left nothing behind. `run_outage` takes Slack down (or has it answer 500) for
a while as tasks stream and finish, then checks that updates were coalesced and delivered after.

The modules: `workdir` (the repo, git config and agent), `bot` (the bot under test and what watches
it), `checks` (the invariants), `report`, `run` (`run_soak`), `outage` (`run_outage`), `cli` (the
command line), `crash` (`make soak-crash`: the bot as a process, killed with SIGKILL and restarted).

Run: `.venv/bin/python tests/soak --tasks 100 --seed 1 --outage 120` (`make soak`), or
`.venv/bin/python tests/soak crash --tasks 300` (`make soak-crash`); with tests/ on sys.path
(PYTHONPATH=tests, as under pytest) `python -m soak` and `python -m soak.crash` work too.
"""
