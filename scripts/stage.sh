#!/usr/bin/env bash
# `scripts/stage.sh "what" command...`: one line before a long step of `make` and one after it
# with its time, so a fresh machine's minute of installing is never silent. pip's own progress
# bars show in between when the output is a terminal.
set -uo pipefail
what=$1
shift
printf '==> %s ...\n' "$what"
start=$(date +%s.%N)
"$@"
status=$?
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
if [ "$status" -eq 0 ]; then
    printf '==> %s: done in %ss\n' "$what" "$elapsed"
else
    printf '==> %s: FAILED after %ss (exit %d)\n' "$what" "$elapsed" "$status" >&2
fi
exit "$status"
