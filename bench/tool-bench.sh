#!/bin/bash
# qcow2-tool against qemu-img (issue 13, "Speed"): the image operations
# people run again and again, on a 16 GiB image (64K clusters) holding
# 4 GiB of data in 1 MiB runs scattered at seeded random offsets:
#
#   tool-check     `check IMAGE` of the image (read-only)
#   tool-snapshot  `snapshot -c NAME` on a fresh copy of it
#   tool-commit    `commit TOP` of an overlay holding a quarter as much
#                  data (1 GiB), scattered too, into a fresh copy of
#                  the image below it
#
# Ours is $BUILDDIR/qcow2-tool, theirs `qemu-img ... -f qcow2`; each
# round times both once, the order rotating (bench/lib.sh alternate),
# ROUNDS rounds.  Copies are made (and synced, so neither tool pays for
# the copy's writeback) before the timed command, both tools' from the
# same files; after it `qemu-img check` must find every image it
# touched clean, the snapshot must be listed by `qemu-img snapshot -l`,
# and the base ours committed into must equal qemu-img's of the same
# round (`qemu-img compare`).  A tool that fails stops the script.
# Printed: each round, then the row lines (times: ratio = qemu-img's
# time / ours, > 1 when ours is faster).
#
#   bench/tool-bench.sh [ROUNDS]          (default 5, or $ROUNDS)
#
# Environment: BUILDDIR, WORKDIR, ROWS (bench/lib.sh); TOOL_SIZE (the
# virtual size, default 16G) and TOOL_DATA (its data, default 4G; the
# overlay holds TOOL_DATA / 4), both in whole MiB.  WORKDIR/tool keeps
# the two images and the commit reference between runs (10 GiB at the
# defaults, and 5 GiB more for a command's copies); they are made only with qemu-img and
# qemu-io.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-5}}
size=${TOOL_SIZE:-16G}
data=${TOOL_DATA:-4G}
tool=$builddir/qcow2-tool
test -x "$tool" || { echo "$0: $tool not built (run make)" >&2; exit 1; }
bench_need qemu-img qemu-io
dir=$workdir/tool
mkdir -p "$dir"

mib=1048576
slots=$(($(bytes_of "$size") / mib))
runs=$(($(bytes_of "$data") / mib))
if ((runs < 4 || runs > slots)); then
    echo "$0: TOOL_DATA ($data) must be 4 MiB to TOOL_SIZE ($size)" >&2
    exit 1
fi
base=$dir/base-$size-$data.qcow2
top=$dir/top-$size-$data.qcow2

# write_runs IMAGE N SEED: qemu-io writes N runs of 1 MiB into IMAGE at
# distinct MiB offsets drawn with SEED, each run a byte pattern of its
# own (seeded too), so every image made with the same arguments holds
# the same data.
write_runs ()
{
    local args
    mapfile -t args < <(python3 - "$slots" "$2" "$3" <<'EOF'
import random, sys
slots, runs, seed = map(int, sys.argv[1:])
rng = random.Random(seed)
for off in sorted(rng.sample(range(slots), runs)):
    print("-c")
    print("write -q -P %d %dM 1M" % (rng.randrange(1, 256), off))
EOF
    )
    qemu-io -f qcow2 "${args[@]}" "$1"
}

if ! test -f "$base"; then
    echo "making $base ($size, $runs runs of 1 MiB)" >&2
    qemu-img create -q -f qcow2 -o cluster_size=65536 "$base.tmp" "$size"
    write_runs "$base.tmp" "$runs" 1
    mv "$base.tmp" "$base"
fi
if want_row tool-commit && ! test -f "$top"; then
    echo "making $top (over $base, $((runs / 4)) runs of 1 MiB)" >&2
    qemu-img create -q -f qcow2 -o cluster_size=65536 \
        -b "$(basename "$base")" -F qcow2 "$top.tmp"
    write_runs "$top.tmp" $((runs / 4)) 2
    mv "$top.tmp" "$top"
fi

# tool_run S COMMAND ARGS...: COMMAND (check, snapshot, commit) by
# ours (qcow2-tool) or qemu (qemu-img, told the format as ours knows it
# where it takes -f: snapshot does not, and probes).
tool_run ()
{
    local s=$1 cmd=$2
    shift 2
    case "$s:$cmd" in
    ours:*) "$tool" "$cmd" "$@" ;;
    qemu:snapshot) qemu-img snapshot "$@" ;;
    qemu:*) qemu-img "$cmd" -f qcow2 "$@" ;;
    esac
}

# qemu_clean IMAGE WHAT: exit unless qemu-img check finds IMAGE clean.
qemu_clean ()
{
    qemu-img check -q -f qcow2 "$1" >/dev/null ||
        { echo "$0: qemu-img check: $1 is not clean after $2" >&2; exit 1; }
}

# fresh_copy SRC DST: a copy that is on the disk before timing starts.
fresh_copy () { cp --sparse=always "$1" "$2"; sync "$2"; }

# check_once S (alternate's FN): result = the seconds of one check,
# which must pass (exit 0: consistent).
check_once () { result=$(seconds tool_run "$1" check "$base"); }

# snapshot_once S: a snapshot of a fresh copy of the image.
snapshot_once ()
{
    local c=$dir/run-$1.qcow2
    fresh_copy "$base" "$c"
    result=$(seconds tool_run "$1" snapshot -c bench "$c")
    qemu_clean "$c" "$1's snapshot -c"
    qemu-img snapshot -l "$c" | awk '$2 == "bench" { n++ } END { exit n != 1 }' ||
        { echo "$0: qemu-img snapshot -l does not list the snapshot $1 made in $c" >&2; exit 1; }
    rm -f "$c"
}

# commit_copies S: fresh copies of the overlay and the image below it
# for S, the overlay's backing name pointing at the copy; sets b and t.
commit_copies ()
{
    b=$dir/run-$1-base.qcow2 t=$dir/run-$1-top.qcow2
    fresh_copy "$base" "$b"
    cp --sparse=always "$top" "$t"
    qemu-img rebase -u -f qcow2 -b "$(basename "$b")" -F qcow2 "$t"
    sync "$t"
}

# commit_once S: commit a fresh copy of the overlay into a fresh copy of
# the image below it, which must then hold the data of the reference
# qemu-img committed before the rounds.  The copies are deleted before
# the next command, so that every timed commit starts with the same
# page cache: keeping a round's first copies while the second tool ran
# made whichever went second take about twice as long.
commit_once ()
{
    local b t
    commit_copies "$1"
    result=$(seconds tool_run "$1" commit "$t")
    qemu_clean "$b" "$1's commit"
    qemu_clean "$t" "$1's commit"
    qemu-img compare -q -f qcow2 -F qcow2 "$b" "$ref" ||
        { echo "$0: the base $1 committed into differs from qemu-img's" >&2; exit 1; }
    rm -f "$b" "$t"
}

# Both programs and their libraries into the page cache.
for s in ours qemu; do tool_run "$s" info "$base" >/dev/null; done

what="$size image, $data data"
if want_row tool-check; then
    echo "tool-check: check of the $what" >&2
    before=$(stat -c %y "$base")
    cat "$base" >/dev/null
    for s in ours qemu; do check_once "$s"; done          # warm-up
    alternate "$rounds" check_once ours qemu
    test "$(stat -c %y "$base")" = "$before" ||
        { echo "$0: check changed $base" >&2; exit 1; }
    emit_row tool-check "check of a $what" s
    reset_results
fi
if want_row tool-snapshot; then
    echo "tool-snapshot: snapshot -c on a fresh copy of the $what" >&2
    alternate "$rounds" snapshot_once ours qemu
    emit_row tool-snapshot "snapshot -c, $what" s
    reset_results
fi
if want_row tool-commit; then
    echo "tool-commit: commit of an overlay of $((runs / 4)) MiB into the $what" >&2
    ref=$dir/ref-$size-$data.qcow2
    if ! test -f "$ref"; then
        echo "making $ref (qemu-img commit of $top)" >&2
        commit_copies ref
        qemu-img commit -q -f qcow2 "$t"
        mv "$b" "$ref"
        rm -f "$t"
    fi
    alternate "$rounds" commit_once ours qemu
    emit_row tool-commit "commit $((runs / 4))M overlay into $what" s
    reset_results
fi
