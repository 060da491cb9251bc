#!/bin/bash
# Run one of the fuzzers for a while:
#
#   tests/fuzz/run.sh read|write|tool|qcow2-luks|luks SECONDS [WORKDIR]
#
# read, write: the qcow2 engine (fuzz-qcow2-read, -write); tool: what
# qcow2-tool does with it (fuzz-qcow2-tool); qcow2-luks:
# the engine on LUKS-encrypted images, unlocked (fuzz-qcow2-luks);
# luks: LUKS1 and LUKS2 volumes (fuzz-luks).  JOBS=N (default 2) runs
# N processes, one per core.  KEEP_GOING=1 uses libFuzzer's fork mode
# instead, which records a finding and goes on fuzzing.
#
# WORKDIR (default /tmp/qcow2-fuzz) keeps the corpus between runs
# (corpus-MODE/, seeded by make-seeds.sh or make-luks-seeds.sh on the
# first run), the findings (artifacts-MODE/crash-*, timeout-*, leak-*,
# oom-*) and the per-job logs.  The fuzzers are built by build.sh into
# WORKDIR/build when missing.  A finding, once fixed, goes minimised
# into regressions/ (see README).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=$1 secs=$2 work=${3:-/tmp/qcow2-fuzz}
jobs=${JOBS:-2}
case $mode in
read|write|tool)
    target=fuzz-qcow2-$mode seeds=seeds dict=qcow2.dict
    extra=("$here/regressions") ;;
qcow2-luks)
    target=fuzz-qcow2-luks seeds=seeds-qcow2-luks dict=qcow2.dict
    extra=("$here/corpus/qcow2-luks" "$here/regressions/qcow2-luks") ;;
luks)
    target=fuzz-luks seeds=seeds-luks dict=luks.dict
    extra=("$here/corpus/luks" "$here/regressions/luks") ;;
*)
    echo "$0: unknown mode $mode" >&2; exit 1 ;;
esac
mkdir -p "$work"
test -x "$work/build/$target" || "$here/build.sh" "$work/build"
if ! test -d "$work/$seeds"; then
    case $mode in
    read|write|tool) "$here/make-seeds.sh" "$work/$seeds" ;;
    *) "$here/make-luks-seeds.sh" "$mode" "$work/$seeds" ;;
    esac
fi
dirs=()
for d in "${extra[@]}"; do
    if test -d "$d"; then dirs+=("$d"); fi
done
mkdir -p "$work/corpus-$mode" "$work/artifacts-$mode" "$work/logs-$mode"
cd "$work/logs-$mode"
if test -n "${KEEP_GOING:-}"; then
    par=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
else
    par=(-jobs="$jobs" -workers="$jobs")
fi
exec "$work/build/$target" \
    "${par[@]}" -timeout=5 -rss_limit_mb=2048 \
    -max_total_time="$secs" -print_final_stats=1 \
    -dict="$here/$dict" \
    -artifact_prefix="$work/artifacts-$mode/" \
    "$work/corpus-$mode" "$work/$seeds" "${dirs[@]}"
