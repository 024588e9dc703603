"""Git for the bot, one module per concept: `commands` runs git (and says what a repository is and
where its git dirs are); `naming` names branches and worktrees and checks branch names; `refs`
checks ref arguments and reads refs (the commit a ref names, branches, the default branch,
ancestry); `inventory` lists worktrees and orphans; `worktrees` creates, commits and removes a
task's worktree; `diff` summarises changes; `merge` merges; `checkout` keeps a base branch's
checkout in step; `locks` recovers a stale ref lock.
"""
