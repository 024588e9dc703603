#!/bin/sh
# A `git` for fault tests, put first on the bot's PATH: it runs the real git ($REAL_GIT) but holds
# still once at a chosen step, so a test can kill -9 the bot at exactly that point. No timing luck:
# the step is reached, the pid is in $PAUSE_MARKER, and nothing moves until the test acts.
#   PAUSE_ON, PAUSE_ALSO  words that must both occur in git's arguments, e.g. "update-ref" and
#                         "refs/heads/main" (the base ref moving), or "worktree add" and "-b"
#   PAUSE_WHEN            "before" (git has not run) or "after" (git has run, its caller not told)
# The bot runs every git command in a session of its own, so killing the bot's process group does
# not reach this shim: it ends by itself once the bot is gone, and the test ends it too (faultbot.py).
matched=0
if [ -n "$PAUSE_ON" ] && [ ! -e "$PAUSE_MARKER" ]; then
  case " $* " in
    *" $PAUSE_ON "*) case " $* " in *" $PAUSE_ALSO "*) matched=1 ;; esac ;;
  esac
fi
if [ "$matched" = 0 ]; then
  exec "$REAL_GIT" "$@"
fi
if [ "$PAUSE_WHEN" = "after" ]; then
  "$REAL_GIT" "$@"
  code=$?
else
  code=0
fi
echo "$$ $PAUSE_WHEN $*" > "$PAUSE_MARKER.tmp" && mv "$PAUSE_MARKER.tmp" "$PAUSE_MARKER"
# hold until the bot that called us is gone (the test kills it), at most 10 minutes: a shim that
# outlived its test would be a process left running after the suite. "Gone" is "we were re-parented",
# which happens the moment the bot dies: `kill -0 $PPID` goes on succeeding while the dead bot is an
# unreaped zombie (pid 1 of a container may never reap it), and forever when $PPID was 1 already.
parent=$PPID
parent_now() { read -r stat < "/proc/$$/stat" || return 1; stat=${stat##*) }; set -- $stat; echo "$2"; }
i=0
while [ "$parent" != 1 ] && [ "$(parent_now)" = "$parent" ] && [ "$i" -lt 6000 ]; do
  sleep 0.1
  i=$((i + 1))
done
exit $code
