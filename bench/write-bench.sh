#!/bin/bash
# Write speed of the qcow2 plugin, side by side with qemu-nbd:
#
#   ours   nbdkit ./qcow2.so file=IMAGE
#   qemu   qemu-nbd --shared=0 -f qcow2 IMAGE   (its defaults otherwise:
#          writeback cache, aio=threads)
#
# 1. copy: `nbdcopy --flush RAW URI` of a 1 GiB raw file of realistic
#    data (bytes from /usr with zero runs, as bench/read-bench.sh makes)
#    into a fresh image from `qemu-img create`; time until nbdcopy
#    returns (the flush included), then the result is checked once
#    against the raw file with `qemu-img compare`.
# 2. iops: fio's nbd engine, 4 KiB random writes, iodepth 32, for
#    RUNTIME seconds, on a fresh image (every write allocates) and on
#    one made with preallocation=falloc (every write is in place).
#
# Servers alternate within each round and the order rotates; the
# medians over ROUNDS rounds and the ratios are printed at the end.
#
#   bench/write-bench.sh [ROUNDS]            (default 3)
#
# Environment: BUILDDIR (default: the top of the source tree) holds
# qcow2.so; WORKDIR (default bench/out) holds the raw data file (shared
# with read-bench.sh) and the scratch images; SIZE (default 1G);
# CLUSTER (default 64k); RUNTIME (default 20).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-3}
size=${SIZE:-1G}
cluster=${CLUSTER:-65536}
runtime=${RUNTIME:-20}
plugin=$builddir/qcow2.so

raw=$workdir/data-$size.raw
img=$workdir/write-bench.qcow2

for cmd in nbdkit qemu-nbd qemu-img nbdcopy fio; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd ||
    { echo "$0: this fio has no nbd engine" >&2; exit 1; }
test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
mkdir -p "$workdir"

# The same data as read-bench.sh: files under /usr repeated to fill the
# size, a zero MiB every 16 MiB.
make_raw ()
{
    local bytes tmp=$raw.tmp pass=0 mib
    bytes=$(numfmt --from=iec "$size")
    echo "making $raw ($size of data from /usr)" >&2
    rm -f "$tmp"
    while test "$(stat -c %s "$tmp" 2>/dev/null || echo 0)" -lt "$bytes"; do
        ((++pass <= 20)) || { echo "$0: not enough data under /usr" >&2; exit 1; }
        find /usr/lib /usr/share /usr/bin -type f -size +4k -print0 2>/dev/null |
            xargs -0 cat 2>/dev/null | head -c "$bytes" >>"$tmp" || true
    done
    truncate -s "$bytes" "$tmp"
    for ((mib = 8; mib < bytes / 1048576; mib += 16)); do
        dd if=/dev/zero of="$tmp" bs=1M seek="$mib" count=1 conv=notrunc status=none
    done
    mv "$tmp" "$raw"
}
test -f "$raw" || make_raw
cat "$raw" >/dev/null    # warm the page cache

tmp=$(mktemp -d)
server_pid=
cleanup ()
{
    test -z "$server_pid" || kill "$server_pid" 2>/dev/null || true
    rm -rf "$tmp" "$img"
}
trap cleanup EXIT

# start SERVER (ours, qemu) and stop.
# shellcheck source=bench/servers.sh
. "$here/servers.sh"

seconds_since () { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

# copy SERVER: result = seconds for nbdcopy --flush of the raw file
# into a fresh image.  (Functions set result rather than print it: a
# $(...) subshell would start the server out of cleanup's reach.)
copy ()
{
    local t0 t
    rm -f "$img"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$img" "$size"
    start "$1"
    t0=$(date +%s.%N)
    nbdcopy --flush "$raw" "$uri"
    result=$(seconds_since "$t0")
    stop
}

# iops SERVER fresh|falloc: result = 4K random write IOPS.
iops ()
{
    local prealloc=off
    test "$2" = falloc && prealloc=falloc
    rm -f "$img"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster",preallocation="$prealloc" \
        "$img" "$size"
    start "$1"
    fio --name=randwrite --ioengine=nbd --uri="$uri" --rw=randwrite \
        --bs=4k --iodepth=32 --runtime="$runtime" --time_based \
        --randrepeat=0 --output-format=json --output="$tmp/fio.json" >/dev/null
    stop
    qemu-img check -q "$img"
    result=$(/usr/bin/python3 -c '
import json, sys
print("%.0f" % json.load(open(sys.argv[1]))["jobs"][0]["write"]["iops"])' "$tmp/fio.json")
}

# Once: both servers make an image that equals the raw file.
for s in ours qemu; do
    rm -f "$img"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$img" "$size"
    start "$s"
    nbdcopy --flush "$raw" "$uri"
    stop
    qemu-img check -q "$img"
    qemu-img compare -q -f qcow2 -F raw "$img" "$raw" ||
        { echo "$0: $s: the copy differs from the raw file" >&2; exit 1; }
done

declare -A res
for ((r = 1; r <= rounds; r++)); do
    order=(ours qemu)
    ((r % 2)) || order=(qemu ours)
    for s in "${order[@]}"; do
        copy "$s";          res[copy-$s]+="$result "
        printf 'round %d  %-4s copy          %8.3f s\n' "$r" "$s" "$result"
        iops "$s" fresh;    res[fresh-$s]+="$result "
        printf 'round %d  %-4s iops fresh    %8d\n' "$r" "$s" "$result"
        iops "$s" falloc;   res[falloc-$s]+="$result "
        printf 'round %d  %-4s iops falloc   %8d\n' "$r" "$s" "$result"
    done
done

median () { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
div () { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
m () { median <<<"${res[$1]}"; }

mib=$(( $(numfmt --from=iec "$size") / 1048576 ))
echo
echo "medians of $rounds rounds ($size, $cluster-byte clusters):"
printf '  %-44s %10s %10s %8s\n' "" "ours" "qemu-nbd" "ratio"
printf '  %-44s %8.3f s %8.3f s %7sx\n' "nbdcopy --flush $size raw -> fresh qcow2" \
    "$(m copy-ours)" "$(m copy-qemu)" "$(div "$(m copy-qemu)" "$(m copy-ours)")"
printf '  %-44s %6.0f MiB/s %6.0f MiB/s\n' "  (throughput)" \
    "$(div "$mib" "$(m copy-ours)")" "$(div "$mib" "$(m copy-qemu)")"
printf '  %-44s %10d %10d %7sx\n' "fio 4K randwrite QD32 IOPS, fresh image" \
    "$(m fresh-ours)" "$(m fresh-qemu)" "$(div "$(m fresh-ours)" "$(m fresh-qemu)")"
printf '  %-44s %10d %10d %7sx\n' "fio 4K randwrite QD32 IOPS, falloc image" \
    "$(m falloc-ours)" "$(m falloc-qemu)" "$(div "$(m falloc-ours)" "$(m falloc-qemu)")"
echo "  (ratio > 1: ours is faster; copy ratio = qemu time / our time)"
