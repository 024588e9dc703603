"""Git for the bot, one module per concept: `commands` runs git; `naming` names branches and
worktrees and checks branch names; `refs` reads refs; `inventory` lists worktrees and orphans;
`worktrees` creates, commits and removes a task's worktree; `diff` summarises changes; `merge`
merges; `checkout` keeps a base branch's checkout in step; `locks` recovers a stale ref lock.
"""
