"""Where a new task starts, decided from plain values (no processes): local, or the remote's tip."""

from __future__ import annotations

from superset_bot.engine.bases import LOCAL, REMOTE, decide_start
from superset_bot.git.remote import strip_credentials

LOCAL_SHA = "1111111111111111111111111111111111111111"
REMOTE_SHA = "2222222222222222222222222222222222222222"


def test_no_remote_or_fetching_off_starts_from_local_and_says_nothing() -> None:
    for start in (decide_start(branch="main", local=LOCAL_SHA),
                  decide_start(branch="main", local=LOCAL_SHA, remote="origin", remote_tip=None)):
        assert (start.commit, start.source, start.note, start.ok) == (LOCAL_SHA, LOCAL, None, True)


def test_the_same_commit_on_both_sides_says_nothing() -> None:
    start = decide_start(branch="main", local=LOCAL_SHA, remote="origin", remote_tip=LOCAL_SHA,
                         local_in_remote=True, remote_in_local=True)
    assert (start.commit, start.note, start.ok) == (LOCAL_SHA, None, True)


def test_local_behind_the_remote_starts_from_the_remote_tip_and_says_how_far() -> None:
    start = decide_start(branch="main", local=LOCAL_SHA, remote="origin", remote_tip=REMOTE_SHA,
                         local_in_remote=True, ahead=3)
    assert (start.commit, start.source, start.ok) == (REMOTE_SHA, REMOTE, True)
    assert start.note == "Started from origin/main at 22222222 (3 commits ahead of local main)."
    one = decide_start(branch="main", local=LOCAL_SHA, remote="origin", remote_tip=REMOTE_SHA,
                       local_in_remote=True, ahead=1)
    assert "(1 commit ahead of local main)" in (one.note or "")


def test_local_ahead_of_the_remote_starts_from_local_quietly() -> None:
    start = decide_start(branch="main", local=LOCAL_SHA, remote="origin", remote_tip=REMOTE_SHA,
                         remote_in_local=True)
    assert (start.commit, start.source, start.note, start.ok) == (LOCAL_SHA, LOCAL, None, True)


def test_diverged_starts_from_local_and_warns() -> None:
    start = decide_start(branch="dev", local=LOCAL_SHA, remote="upstream", remote_tip=REMOTE_SHA)
    assert (start.commit, start.source, start.ok) == (LOCAL_SHA, LOCAL, False)
    assert start.note == ("`upstream/dev` (22222222) and local `dev` (11111111) have diverged; "
                          "started from local `dev` at 11111111.")


def test_a_failed_fetch_starts_from_local_and_says_why_whatever_the_old_tracking_ref_says() -> None:
    start = decide_start(branch="main", local=LOCAL_SHA, remote="origin", remote_tip=REMOTE_SHA,
                         local_in_remote=True, ahead=2, fetch_error="no answer within 20 s")
    assert (start.commit, start.source, start.ok) == (LOCAL_SHA, LOCAL, False)
    assert start.note == "Could not fetch origin (no answer within 20 s); started from local `main` at 11111111."


def test_credentials_never_left_in_a_url() -> None:
    text = ("unable to access 'https://bob:s3cret@example.com/r.git/': 403; "
            "also ssh://tok@host/x and git@github.com:o/r.git")
    cleaned = strip_credentials(text)
    assert "s3cret" not in cleaned and "bob" not in cleaned and "tok@" not in cleaned
    assert "https://example.com/r.git/" in cleaned and "ssh://host/x" in cleaned
    assert "git@github.com:o/r.git" in cleaned, "scp-style addresses name a user, no secret"
