#!/bin/sh
# A `git` for in-process race tests, put first on PATH: it runs the real git ($REAL_GIT) but holds
# once at a chosen step until the test lets it go, so the test can cancel, discard or stop the task
# while the bot waits on exactly that step.
#   PAUSE_ON, PAUSE_ALSO  words that must both occur in git's arguments, e.g. "worktree move" and a path
#   PAUSE_WHEN            "before" (git has not run yet) or "after" (git has run, its caller not told)
#   PAUSE_MARKER          written (pid and arguments) when held; "$PAUSE_MARKER.go" releases it
matched=0
if [ -n "$PAUSE_ON" ] && [ ! -e "$PAUSE_MARKER" ]; then
  case " $* " in
    *" $PAUSE_ON "*) case " $* " in *" $PAUSE_ALSO "*) matched=1 ;; esac ;;
  esac
fi
if [ "$matched" = 0 ]; then
  exec "$REAL_GIT" "$@"
fi
code=0
if [ "$PAUSE_WHEN" = "after" ]; then
  "$REAL_GIT" "$@"
  code=$?
fi
echo "$$ $PAUSE_WHEN $*" > "$PAUSE_MARKER.tmp" && mv "$PAUSE_MARKER.tmp" "$PAUSE_MARKER"
# held until the test lets go; a test that failed before doing so (or its dead process) frees it
# after 5 minutes at most, so no shim outlives the suite. The caller is gone once we are re-parented
# (see git_pause.sh: `kill -0 $PPID` is fooled by an unreaped zombie, and by a $PPID of 1).
parent=$PPID
parent_now() { read -r stat < "/proc/$$/stat" || return 1; stat=${stat##*) }; set -- $stat; echo "$2"; }
i=0
while [ ! -e "$PAUSE_MARKER.go" ]; do
  if [ "$parent" = 1 ] || [ "$(parent_now)" != "$parent" ] || [ "$i" -ge 6000 ]; then
    exit 1
  fi
  sleep 0.05
  i=$((i + 1))
done
if [ "$PAUSE_WHEN" = "before" ]; then
  exec "$REAL_GIT" "$@"
fi
exit $code
