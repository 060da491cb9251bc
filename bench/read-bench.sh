#!/bin/bash
# Read a 1 GiB plain qcow2 image with `nbdcopy URI null:` from
#   ours   nbdkit -r ./qcow2.so file=IMAGE
#   qemu   qemu-nbd -r --shared=0 -f qcow2 IMAGE
#   file   nbdkit -r file RAW (the same data as a raw file: the ceiling)
# alternating the servers, several rounds, and print the medians and
# ratios.  The page cache is warm for all three (the files are read once
# before timing), so this measures the servers, not the disk.
#
#   bench/read-bench.sh [ROUNDS]          (default 7)
#
# Environment: BUILDDIR (default: the top of the source tree) holds
# qcow2.so; WORKDIR (default bench/out) holds the images, kept between
# runs; SIZE (default 1G); CLUSTER (default 64k).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-7}
size=${SIZE:-1G}
cluster=${CLUSTER:-65536}
plugin=$builddir/qcow2.so

raw=$workdir/data-$size.raw
img=$workdir/data-$size-$cluster.qcow2

for cmd in nbdkit qemu-nbd qemu-img nbdcopy; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
mkdir -p "$workdir"

# Realistic data: the bytes of files under /usr (binaries, text, already
# compressed data) repeated to fill the image, with a hole every 16 MiB
# so the image has unallocated space as real disks do.
make_raw ()
{
    local bytes tmp=$raw.tmp
    bytes=$(numfmt --from=iec "$size")
    echo "making $raw ($size of data from /usr)" >&2
    rm -f "$tmp"
    local pass=0
    while test "$(stat -c %s "$tmp" 2>/dev/null || echo 0)" -lt "$bytes"; do
        ((++pass <= 20)) || { echo "$0: not enough data under /usr" >&2; exit 1; }
        find /usr/lib /usr/share /usr/bin -type f -size +4k -print0 2>/dev/null |
            xargs -0 cat 2>/dev/null | head -c "$bytes" >>"$tmp" || true
    done
    truncate -s "$bytes" "$tmp"
    for ((mib = 8; mib < bytes / 1048576; mib += 16)); do
        fallocate --punch-hole --offset $((mib * 1048576)) --length 1048576 "$tmp"
    done
    # Zero blocks become holes, so the file plugin skips at least what
    # the qcow2 image leaves unallocated: a fair ceiling.
    fallocate --dig-holes "$tmp"
    mv "$tmp" "$raw"
}

test -f "$raw" || make_raw
if ! test -f "$img"; then
    echo "making $img" >&2
    qemu-img convert -f raw -O qcow2 -o cluster_size="$cluster" "$raw" "$img"
fi
cat "$raw" "$img" >/dev/null   # warm the page cache

tmp=$(mktemp -d)
pids=()
cleanup ()
{
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_socket ()
{
    local i
    for ((i = 0; i < 100; i++)); do
        test -S "$1" && test -s "$2" && return 0
        sleep 0.1
    done
    echo "$0: server did not start ($1)" >&2
    exit 1
}

# One long-lived server of each kind; nbdcopy connects afresh each time.
nbdkit -f -r -U "$tmp/ours.sock" --pidfile "$tmp/ours.pid" \
    "$plugin" file="$img" >/dev/null 2>&1 &
pids+=($!)
nbdkit -f -r -U "$tmp/file.sock" --pidfile "$tmp/file.pid" \
    file "$raw" >/dev/null 2>&1 &
pids+=($!)
qemu-nbd -r --shared=0 -f qcow2 --persistent -k "$tmp/qemu.sock" \
    --pid-file="$tmp/qemu.pid" "$img" >/dev/null 2>&1 &
pids+=($!)
wait_socket "$tmp/ours.sock" "$tmp/ours.pid"
wait_socket "$tmp/file.sock" "$tmp/file.pid"
wait_socket "$tmp/qemu.sock" "$tmp/qemu.pid"

uri () { echo "nbd+unix:///?socket=$tmp/$1.sock"; }

# Seconds taken by one full read.
time_read ()
{
    local start end
    start=$(date +%s.%N)
    nbdcopy "$(uri "$1")" null:
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

# Check once that the three serve the same bytes.
sums=$(for s in ours qemu file; do nbdcopy "$(uri "$s")" - | md5sum; done | sort -u | wc -l)
test "$sums" -eq 1 || { echo "$0: the servers disagree on the data" >&2; exit 1; }

declare -A times
for s in ours qemu file; do time_read "$s" >/dev/null; done   # warm-up
for ((r = 1; r <= rounds; r++)); do
    # Rotate the order each round so no server always goes first.
    order=(ours qemu file)
    for ((k = 0; k < (r - 1) % 3; k++)); do order=("${order[@]:1}" "${order[0]}"); done
    for s in "${order[@]}"; do
        t=$(time_read "$s")
        times[$s]+="$t "
        printf 'round %d  %-5s %.3f s\n' "$r" "$s" "$t"
    done
done

median () { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

m_ours=$(median <<<"${times[ours]}")
m_qemu=$(median <<<"${times[qemu]}")
m_file=$(median <<<"${times[file]}")
mib=$(( $(numfmt --from=iec "$size") / 1048576 ))

echo
echo "nbdcopy URI null: of a $size qcow2 image ($cluster-byte clusters), $rounds rounds, medians:"
div () { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
row () { printf '  %-40s %7.3f s  %6.0f MiB/s\n' "$1" "$2" "$(div "$mib" "$2")"; }
row "qcow2 plugin (nbdkit -r ./qcow2.so)" "$m_ours"
row "qemu-nbd -r --shared=0 -f qcow2" "$m_qemu"
row "nbdkit file plugin on the raw file" "$m_file"
printf '  ours vs qemu-nbd: %.2fx as fast (qemu-nbd time / our time)\n' "$(div "$m_qemu" "$m_ours")"
printf '  ours vs the file plugin: %.1f%% of its speed (file time / our time)\n' \
    "$(awk -v a="$m_file" -v b="$m_ours" 'BEGIN { print 100 * a / b }')"
