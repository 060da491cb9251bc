#!/bin/bash
# Compressed qcow2 output, as virt-v2v -oo compressed makes it: the same
# nbdcopy workload (`nbdcopy --requests=64 --flush RAW URI`) into a new
# image through
#   ours   nbdkit --filter=./compress.so ./qcow2.so file=IMAGE
#   qemu   qemu-nbd --shared=0 --persistent --image-opts driver=compress,
#            file.driver=qcow2,file.file.driver=file,file.file.filename=IMAGE
# for zlib- and zstd-type images (rows compwrite-zlib, compwrite-zstd),
# the servers alternating (bench/lib.sh alternate), ROUNDS pairs.
# Prints each round, then the row lines bench/suite.sh collects: the
# median of the per-pair speed ratios with their range, the median
# throughput of each, and in the note the output sizes (ours / qemu's)
# and the servers' CPU time (user + system, all threads; steadier than
# wall time when the machine is shared).  Both outputs of the last
# round are checked with qemu-img check and compared with the source.
#
#   bench/compress-bench.sh [ROUNDS]          (default $ROUNDS, else 3)
#
# Environment: BUILDDIR, WORKDIR (bench/lib.sh); SIZE (1G); CLUSTER
# (65536); ROWS (both rows).

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-3}}
size=${SIZE:-1G}
cluster=${CLUSTER:-65536}
filter=$builddir/compress.so
test -e "$filter" || { echo "$0: $filter not built (run make)" >&2; exit 1; }
bench_need nbdkit qemu-nbd qemu-img nbdcopy

raw=$workdir/disk-$size.raw
make_disk_raw "$raw" "$size"
cat "$raw" >/dev/null           # warm the page cache
bytes=$(stat -c %s "$raw")
echo "source: $raw, $bytes bytes; clusters $cluster; $rounds rounds"
echo "ours: zlib encoder $(nbdkit "$plugin" --dump-plugin | sed -n 's/^qcow2_zlib_encoder=//p')"

# copy_into SERVER (alternate's FN): a fresh image of $type written
# through SERVER; result is MiB/s, results[cpu:SERVER] the server's CPU
# seconds from start to stop.
copy_into ()
{
    local img=$workdir/out-$1-$type.qcow2 t
    rm -f "$img"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster",compression_type="$type" \
        "$img" "$bytes"
    case $1 in
    ours) serve ours nbdkit --filter="$filter" "$plugin" file="$img" ;;
    qemu) serve qemu qemu --image-opts \
              "driver=compress,file.driver=qcow2,file.file.driver=file,file.file.filename=$img" ;;
    esac
    t=$(seconds nbdcopy --requests=64 --flush "$raw" "${nbd_uri[$1]}")
    results[cpu:$1]+="$(cpu_seconds "${spid[$1]}") "
    unserve "$1"
    result=$(mibs "$bytes" "$t")
}

for type in zlib zstd; do
    want_row "compwrite-$type" || continue
    echo "compwrite-$type: nbdcopy --flush through the compress filter, MiB/s" >&2
    alternate "$rounds" copy_into ours qemu
    for s in qemu ours; do
        img=$workdir/out-$s-$type.qcow2
        qemu-img check -q "$img" || { echo "$0: $s $type: check failed" >&2; exit 1; }
        qemu-img compare -q -f raw -F qcow2 "$raw" "$img" ||
            { echo "$0: $s $type: differs from the source" >&2; exit 1; }
    done
    sq=$(stat -c %s "$workdir/out-qemu-$type.qcow2")
    so=$(stat -c %s "$workdir/out-ours-$type.qcow2")
    emit_row "compwrite-$type" "nbdcopy --flush through the compress filter, $type" MiB/s \
        "$(awk -v o="$so" -v q="$sq" 'BEGIN { printf "size ours/qemu %.3f", o / q }'); server CPU s: ours $(med_of cpu:ours), qemu $(med_of cpu:qemu)"
    reset_results
done
