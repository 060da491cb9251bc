#!/bin/bash
# Does the cost of an allocating write grow with the image, and what
# do in-place writes cost?  For one or more builds of the plugin
# (before / after a change), alternating within each round:
#
#   alloc SIZE  2000 allocating 4 KiB writes (one a cluster, in the
#               first 125 MiB) and a flush into a fresh image of SIZE
#               (1G and 2047T: the L1 table of the large one has 4
#               million entries), timed inside one nbdsh client
#   inplace     20000 random 4 KiB writes and a flush into a 1 GiB
#               image made with preallocation=falloc (every write in
#               place), one nbdsh client
#   copy        nbdcopy --flush of 256 MiB of random data into that
#               preallocated image (in-place throughput, 4 connections)
#
# and prints the median seconds of ROUNDS rounds for each build (the
# writes and, apart, the flush after them: it writes the whole L1 table
# if an entry changed, 32 MiB at 2047T).
#
#   bench/alloc-scale.sh [ROUNDS] BUILDDIR...   (default 3, the tree)
#
# Environment: WORKDIR (bench/lib.sh), CLUSTER (default 65536).
# Prints each run's seconds as it goes, then the medians.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
rounds=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
test $# -eq 0 || BUILDDIR=$1
bench_init
builds=("$@")
test ${#builds[@]} -gt 0 || builds=("$top")
cluster=${CLUSTER:-65536}
bench_need nbdkit nbdsh nbdcopy qemu-img
for b in "${builds[@]}"; do
    test -e "$b/qcow2.so" || { echo "$0: $b/qcow2.so not built" >&2; exit 1; }
done
raw=$workdir/random-256M.raw
make_random_raw "$raw" 256M
img=$tmp/img.qcow2

# start BUILD: our server with BUILD's plugin on $img.
start ()
{
    plugin=$1/qcow2.so
    serve ours ours "$img"
}

# finish: results[cpu:$current] += the server's CPU seconds (user +
# system, steadier than wall time on a busy machine); stop it, and the
# image must be clean.
finish ()
{
    results[cpu:$current]+="$(cpu_seconds "${spid[ours]}") "
    unserve ours
    qemu-img check -q "$img"
}

# timed PYTHON: result = the seconds PYTHON takes in nbdsh (h
# connected), flush = those of the flush after it.
timed ()
{
    read -r result flush < <(nbdsh -u "${nbd_uri[ours]}" -c "
import os, random, time
random.seed(1)
t0 = time.monotonic()
$1
t1 = time.monotonic()
h.flush()
print('%.4f %.4f' % (t1 - t0, time.monotonic() - t1))")
}

alloc ()
{
    qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$img" "$2"
    start "$1"
    timed "
buf = os.urandom(4096)
for i in range(2000):
    h.pwrite(buf, i * $cluster)"
    finish
}

inplace ()
{
    qemu-img create -q -f qcow2 -o cluster_size="$cluster",preallocation=falloc \
        "$img" 1G
    start "$1"
    timed "
buf = os.urandom(4096)
for i in range(20000):
    h.pwrite(buf, random.randrange(262144) * 4096)"
    finish
}

copy ()
{
    qemu-img create -q -f qcow2 -o cluster_size="$cluster",preallocation=falloc \
        "$img" 256M
    start "$1"
    result=$(seconds nbdcopy --flush "$raw" "${nbd_uri[ours]}")
    flush=0
    finish
}

# run_one BUILD:WORKLOAD (alternate's FN): rotate the order of every
# workload of every build each round.
run_one ()
{
    local b=${1%:*} w=${1##*:}
    current=$1
    rm -f "$img"
    # shellcheck disable=SC2086
    set -- "$b" $w
    "$2" "$1" "${3:-}"
    results[flush:$b:$w]+="$flush "
}

names=()
for b in "${builds[@]}"; do
    for w in "alloc 1G" "alloc 2047T" inplace copy; do names+=("$b:$w"); done
done
alternate "$rounds" run_one "${names[@]}"

echo
echo "medians of $rounds rounds, seconds ($cluster-byte clusters; the"
echo "writes, then the flush after them; copy includes its flush):"
printf '  %-32s %15s %15s %15s %8s\n' build "alloc 1G" "alloc 2047T" inplace copy
for b in "${builds[@]}"; do
    printf '  %-32s' "$b"
    for w in "alloc 1G" "alloc 2047T" inplace; do
        printf ' %7.3f +%6.3f' "$(med_of "$b:$w")" "$(med_of "flush:$b:$w")"
    done
    printf ' %8.3f\n' "$(med_of "$b:copy")"
done
echo "the server's CPU seconds, from start to before the stop (open, writes, flush):"
for b in "${builds[@]}"; do
    printf '  %-32s' "$b"
    for w in "alloc 1G" "alloc 2047T" inplace copy; do
        printf ' %15.3f' "$(med_of "cpu:$b:$w")"
    done
    echo
done
