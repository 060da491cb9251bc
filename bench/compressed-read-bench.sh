#!/bin/bash
# Reads of compressed qcow2 images made by `qemu-img convert -c`, ours
# against qemu-nbd side by side (bench/lib.sh alternate: ROUNDS pairs,
# the order rotating; the figure is the median of the per-pair ratios,
# with their range):
#   zlib-read, zstd-read  `nbdcopy URI null:` of a SIZE image, MiB/s
#   randread-zlib         fio's nbd engine, 4 KiB random reads, QD32 x 2
#                         jobs (2 connections), RUNTIME s, of a
#                         RANDREAD_SIZE zlib image, IOPS
# servers:
#   ours   nbdkit -r ./qcow2.so file=IMAGE
#   qemu   qemu-nbd -r --shared=0 --persistent -e 2 -f qcow2 IMAGE
# Also each server's CPU time (user + system, all threads) per run,
# steadier than wall time when the machine is shared.  Prints each
# round, then the row lines bench/suite.sh collects.
#
#   bench/compressed-read-bench.sh [ROUNDS]     (default $ROUNDS, else 3)
#
# Environment: BUILDDIR, WORKDIR (bench/lib.sh); SIZE (1G),
# RANDREAD_SIZE (4G), CLUSTER (65536), RUNTIME (10), ROWS (all three).

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-3}}
size=${SIZE:-1G}
rsize=${RANDREAD_SIZE:-4G}
cluster=${CLUSTER:-65536}
bench_need nbdkit qemu-nbd qemu-img nbdcopy nbdsh

# image SIZE TYPE: a used-looking disk compressed by qemu-img, kept in
# WORKDIR; prints its name.
image ()
{
    local raw=$workdir/compressed-$1.raw img=$workdir/compressed-$1-$cluster-$2.qcow2
    if ! test -f "$img"; then
        make_disk_raw "$raw" "$1"
        echo "making $img" >&2
        qemu-img convert -m 2 -W -c -f raw -O qcow2 \
            -o compression_type="$2",cluster_size="$cluster" "$raw" "$img.tmp"
        mv "$img.tmp" "$img"
    fi
    echo "$img"
}

# copy_once / randread_once SERVER (alternate's FN): one run; result is
# MiB/s or IOPS.
copy_once () { result=$(mibs "$bytes" "$(seconds nbdcopy "${nbd_uri[$1]}" null:)"); }
randread_once () { result=$(fio_iops "${nbd_uri[$1]}" randread); }

for row in zlib-read zstd-read randread-zlib; do
    want_row "$row" || continue
    case "$row" in
    zlib-read) img=$(image "$size" zlib) fn=copy_once unit=MiB/s
               what="nbdcopy $size to null:, zlib image" ;;
    zstd-read) img=$(image "$size" zstd) fn=copy_once unit=MiB/s
               what="nbdcopy $size to null:, zstd image" ;;
    randread-zlib)
        bench_need fio
        fio_has_nbd || { echo "$0: this fio has no nbd engine" >&2; exit 1; }
        img=$(image "$rsize" zlib) fn=randread_once unit=IOPS
        what="fio 4K randread QD32 x 2, $rsize zlib image" ;;
    esac
    cat "$img" >/dev/null        # warm the page cache
    bytes=$(qemu-img info --output=json "$img" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])')
    RO=1 serve ours ours "$img"
    RO=1 serve qemu qemu -e 2 -f qcow2 "$img"
    same_data ours qemu
    echo "$row: $what ($cluster-byte clusters), $unit" >&2
    alternate "$rounds" "$fn" ours qemu
    emit_row "$row" "$what" "$unit" "server CPU s a run: ours $(med_of cpu:ours), qemu $(med_of cpu:qemu)"
    unserve ours
    unserve qemu
    reset_results
done
