"""Merging a base into a branch no worktree has checked out (a task whose worktree is on a worker host)."""

from __future__ import annotations

from conftest import RepoFactory, git
from support.gitfiles import commit_file

from superset_bot.git.merge import merge_into_branch


async def test_clean_merge_moves_only_the_branch(make_repo: RepoFactory) -> None:
    repo = make_repo("demo", {"a.txt": "a\n", "b.txt": "b\n"})
    git(repo, "branch", "task")
    git(repo, "checkout", "-q", "task")
    task_head = commit_file(repo, "a.txt", "a from the task\n", "task edits a")
    git(repo, "checkout", "-q", "main")
    main_head = commit_file(repo, "b.txt", "b from main\n", "main edits b")
    commit, conflicts = await merge_into_branch(repo, "task", "main")
    assert conflicts == []
    assert git(repo, "rev-parse", "task") == commit
    assert git(repo, "rev-list", "--parents", "-n1", commit).split()[1:] == [task_head, main_head]
    assert git(repo, "show", "task:a.txt") == "a from the task" and git(repo, "show", "task:b.txt") == "b from main"
    assert git(repo, "rev-parse", "main") == main_head and git(repo, "status", "--porcelain") == ""
    again, conflicts = await merge_into_branch(repo, "task", "main")  # nothing new in main: nothing made
    assert (again, conflicts) == (commit, [])


async def test_conflicts_are_committed_with_their_markers(make_repo: RepoFactory) -> None:
    repo = make_repo("demo", {"a.txt": "a\n"})
    git(repo, "branch", "task")
    git(repo, "checkout", "-q", "task")
    commit_file(repo, "a.txt", "the task's a\n", "task edits a")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "a.txt", "main's a\n", "main edits a")
    commit, conflicts = await merge_into_branch(repo, "task", "main")
    assert conflicts == ["a.txt"]
    merged = git(repo, "show", "task:a.txt")
    assert "<<<<<<<" in merged and "the task's a" in merged and "main's a" in merged
    assert "Conflicts left with their markers" in git(repo, "log", "-1", "--format=%B", commit)
