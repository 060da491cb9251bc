#!/bin/bash
# Run one of the qcow2 fuzzers on both cores for a while:
#
#   tests/fuzz/run.sh read|write SECONDS [WORKDIR]
#
# WORKDIR (default /tmp/qcow2-fuzz) keeps the corpus between runs
# (corpus-MODE/, seeded by make-seeds.sh on the first run), the
# findings (artifacts-MODE/crash-*, timeout-*, leak-*, oom-*) and the
# per-job logs.  The fuzzers are built by build.sh into WORKDIR/build
# when missing.  JOBS=N runs N fuzzing jobs (default 2, one a core).  A finding, once fixed, goes minimised into
# regressions/ (see README).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=$1 secs=$2 work=${3:-/tmp/qcow2-fuzz}
mkdir -p "$work"
test -x "$work/build/fuzz-qcow2-$mode" || "$here/build.sh" "$work/build"
if ! test -d "$work/seeds"; then
    "$here/make-seeds.sh" "$work/seeds"
fi
mkdir -p "$work/corpus-$mode" "$work/artifacts-$mode"
cd "$work"
exec "$work/build/fuzz-qcow2-$mode" \
    -jobs="${JOBS:-2}" -workers="${JOBS:-2}" -timeout=5 -rss_limit_mb=2048 \
    -max_total_time="$secs" -print_final_stats=1 \
    -dict="$here/qcow2.dict" \
    -artifact_prefix="$work/artifacts-$mode/" \
    "$work/corpus-$mode" "$work/seeds" "$here/regressions"
