#!/bin/sh
# Runs a command (the test suite) with a fresh $TMPDIR of its own, then fails if the run left
# anything in it: every test must remove its folders, var folders, sockets and mounts. What was
# left is listed, then removed (mounts are detached first; rm never crosses into a mount).
set -u
tmp=$(mktemp -d "${TMPDIR:-/tmp}/circuit-tests-XXXXXX")
# Like /tmp itself (sticky, everyone may enter): the tests that act as a second uid (nobody)
# make their folders here and must reach them.
chmod 1777 "$tmp"
status=0
TMPDIR=$tmp "$@" || status=$?
# v8-compile-cache-UID is the test runner's own code cache, not something a test made.
left=$(ls -A "$tmp" | grep -v '^v8-compile-cache-')
if [ -n "$left" ]; then
  echo "tmpcheck: the tests left these in \$TMPDIR ($tmp):" >&2
  echo "$left" | sed 's/^/  /' >&2
  [ "$status" = 0 ] && status=1
fi
awk -v d="$tmp/" 'index($2, d) == 1 { print $2 }' /proc/mounts | while read -r m; do fusermount -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
rm -rf --one-file-system "$tmp"
exit "$status"
