#!/bin/bash
# A short run of the three qcow2 fuzzers for CI, so that a regression the
# fuzzers find in seconds (as the in-place write onto a refcount block
# was) cannot land:
#
#   tests/fuzz/ci.sh [SECONDS]        (default 60 for each target)
#
# Builds the targets with build.sh into a scratch directory, then runs
# read, write and tool mode one after the other, one process each, starting
# from a copy of the checked-in corpus (regressions/; the tree is not
# written).  Fails on any finding (crash, leak, timeout, out of memory,
# read-back), printing the log and keeping the scratch directory with
# the input in its artifacts-MODE/ (FUZZ_KEEP=1 keeps it anyway).
# Needs clang and libclang-rt-14-dev (Debian 12).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-60}
work=$(mktemp -d /tmp/qcow2-fuzz-ci.XXXXXX)

"$here/build.sh" "$work/build" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; echo "$0: the fuzzers did not build" >&2; exit 1; }

failed=0
for mode in read write tool; do
    mkdir -p "$work/corpus-$mode" "$work/artifacts-$mode"
    # The qcow2 inputs only: regressions/luks/ belongs to the LUKS targets.
    find "$here/regressions" -maxdepth 1 -type f -exec cp -t "$work/corpus-$mode/" {} +
    echo "fuzzing $mode mode for $secs s"
    if ! "$work/build/fuzz-qcow2-$mode" -timeout=5 -rss_limit_mb=2048 \
         -max_total_time="$secs" -print_final_stats=1 \
         -dict="$here/qcow2.dict" \
         -artifact_prefix="$work/artifacts-$mode/" \
         "$work/corpus-$mode" >"$work/$mode.log" 2>&1 ||
       test -n "$(ls "$work/artifacts-$mode")"; then
        tail -n 60 "$work/$mode.log" >&2
        echo "$0: $mode mode found something: $(ls "$work/artifacts-$mode")" >&2
        echo "(in $work; replay with FUZZ_VERBOSE=2 $work/build/fuzz-qcow2-$mode FILE)" >&2
        failed=1
    fi
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/$mode.log" || true
done
if test "$failed" = 0 && test -z "${FUZZ_KEEP:-}"; then rm -rf "$work"; fi
exit "$failed"
