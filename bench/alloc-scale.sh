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
# Environment: WORKDIR (default bench/out), CLUSTER (default 65536).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
rounds=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
builds=("$@")
test ${#builds[@]} -gt 0 || builds=("$top")
workdir=${WORKDIR:-$here/out}
cluster=${CLUSTER:-65536}

# nbdsh needs the system python3 (python3-libnbd), whatever PATH says.
export PATH=/usr/bin:$PATH
for cmd in nbdkit nbdsh nbdcopy qemu-img; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
for b in "${builds[@]}"; do
    test -e "$b/qcow2.so" || { echo "$0: $b/qcow2.so not built" >&2; exit 1; }
done
mkdir -p "$workdir"
raw=$workdir/random-256M.raw
test -f "$raw" || head -c 256M /dev/urandom >"$raw"

tmp=$(mktemp -d)
img=$tmp/img.qcow2
server_pid=
cleanup ()
{
    test -z "$server_pid" || kill "$server_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=bench/servers.sh
. "$here/servers.sh"

# serve BUILD: start our server with BUILD's plugin.
serve ()
{
    plugin=$1/qcow2.so
    start ours
}

# finish: cpu = the server's CPU seconds (user + system, steadier than
# wall time on a busy machine); stop it, and the image must be clean.
finish ()
{
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' \
        "/proc/$server_pid/stat")
    stop
    qemu-img check -q "$img"
}

# timed PYTHON: result = the seconds PYTHON takes in nbdsh (h
# connected), flush = those of the flush after it.
timed ()
{
    read -r result flush < <(nbdsh -u "$uri" -c "
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
    serve "$1"
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
    serve "$1"
    timed "
buf = os.urandom(4096)
for i in range(20000):
    h.pwrite(buf, random.randrange(262144) * 4096)"
    finish
}

copy ()
{
    local t0
    qemu-img create -q -f qcow2 -o cluster_size="$cluster",preallocation=falloc \
        "$img" 256M
    serve "$1"
    t0=$(date +%s.%N)
    nbdcopy --flush "$raw" "$uri"
    result=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.4f", b - a }')
    flush=0
    finish
}

declare -A res
for ((r = 1; r <= rounds; r++)); do
    for ((k = 0; k < ${#builds[@]}; k++)); do
        # Rotate the order every round.
        b=${builds[(k + r) % ${#builds[@]}]}
        for w in "alloc 1G" "alloc 2047T" inplace copy; do
            rm -f "$img"
            # shellcheck disable=SC2086
            set -- $w
            "$1" "$b" "${2:-}"
            res[$b:$w]+="$result "
            res[$b:$w:flush]+="$flush "
            res[$b:$w:cpu]+="$cpu "
            printf 'round %d  %-32s %-12s %8.3f s  (then flush %.3f s; server CPU %.3f s)\n' \
                "$r" "$b" "$w" "$result" "$flush" "$cpu"
        done
    done
done

median () { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
echo "medians of $rounds rounds, seconds ($cluster-byte clusters; the"
echo "writes, then the flush after them; copy includes its flush):"
printf '  %-32s %15s %15s %15s %8s\n' build "alloc 1G" "alloc 2047T" inplace copy
for b in "${builds[@]}"; do
    printf '  %-32s' "$b"
    for w in "alloc 1G" "alloc 2047T" inplace; do
        printf ' %7.3f +%6.3f' "$(median <<<"${res[$b:$w]}")" \
            "$(median <<<"${res[$b:$w:flush]}")"
    done
    printf ' %8.3f\n' "$(median <<<"${res[$b:copy]}")"
done
echo "the server's CPU seconds, from start to before the stop (open, writes, flush):"
for b in "${builds[@]}"; do
    printf '  %-32s' "$b"
    for w in "alloc 1G" "alloc 2047T" inplace copy; do
        printf ' %15.3f' "$(median <<<"${res[$b:$w:cpu]}")"
    done
    echo
done
