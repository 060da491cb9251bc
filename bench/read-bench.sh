#!/bin/bash
# Read rows of issue 10, each side by side with qemu-nbd and the
# ceilings, servers alternating, the order rotating each round:
#
#   plain-read      `nbdcopy URI null:` of a SIZE (1G) qcow2 image of
#                   realistic data (bench/lib.sh make_data_raw), MiB/s
#   randread-alloc  fio's nbd engine, 4 KiB random reads, QD32 x 2 jobs
#                   (2 connections), RUNTIME (10) s, on a RANDREAD_SIZE
#                   (4G) image with every cluster allocated, IOPS.  By
#                   default the image is qemu-img's preallocation=falloc
#                   (and the raw file fallocated): the data reads as
#                   zeroes from the page cache or, once evicted, without
#                   disk I/O, so on a machine whose page cache others
#                   fill the row still measures the servers, not the
#                   disk.  RANDREAD_DATA=random: random data instead
#                   (convert of a raw file; wants 2 x 4G of page cache).
#
#   ours      nbdkit -r ./qcow2.so file=IMAGE
#   qemu      qemu-nbd -r --shared=0 -f qcow2 IMAGE
#   file      nbdkit -r file RAW (the same data as a raw file: a ceiling)
#   noserver  nbdcopy RAW null: (no server at all: plain-read only)
#
# The page cache is warm for all (the files are read before timing), so
# this measures the servers, not the disk.  Prints each round, then the
# row lines bench/suite.sh collects (bench/lib.sh emit_row).
#
#   bench/read-bench.sh [ROUNDS]          (default $ROUNDS, else 5)
#
# Environment: BUILDDIR, WORKDIR (bench/lib.sh); SIZE (1G),
# RANDREAD_SIZE (4G), RANDREAD_DATA (falloc), CLUSTER (65536),
# RUNTIME (10), ROWS (both rows).

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-5}}
size=${SIZE:-1G}
rsize=${RANDREAD_SIZE:-4G}
cluster=${CLUSTER:-65536}
bench_need nbdkit qemu-nbd qemu-img nbdcopy nbdsh

# qcow2_of RAW: a qcow2 copy of RAW made by qemu-img, kept in WORKDIR.
qcow2_of ()
{
    local img=${1%.raw}-$cluster.qcow2
    if ! test -f "$img"; then
        echo "making $img" >&2
        qemu-img convert -f raw -O qcow2 -o cluster_size="$cluster" "$1" "$img.tmp"
        mv "$img.tmp" "$img"
    fi
    echo "$img"
}

# serve_three IMAGE RAW: ours and qemu on IMAGE, file on RAW, read-only;
# checks once that the three serve the same bytes.
serve_three ()
{
    cat "$1" "$2" >/dev/null   # warm the page cache
    RO=1 serve ours ours "$1"
    RO=1 serve qemu qemu -f qcow2 "$1"
    RO=1 serve file file "$2"
    same_data ours qemu file
}

unserve_three () { unserve ours; unserve qemu; unserve file; }

if want_row plain-read; then
    raw=$workdir/data-$size.raw
    make_data_raw "$raw" "$size"
    img=$(qcow2_of "$raw")
    serve_three "$img" "$raw"
    bytes=$(stat -c %s "$raw")
    copy_once ()
    {
        local src=$raw
        test "$1" = noserver || src=${nbd_uri[$1]}
        result=$(mibs "$bytes" "$(seconds nbdcopy "$src" null:)")
    }
    for s in ours qemu file noserver; do copy_once "$s"; done   # warm-up
    echo "plain-read: nbdcopy URI null: of $size ($cluster-byte clusters), MiB/s" >&2
    alternate "$rounds" copy_once ours qemu file noserver
    emit_row plain-read "nbdcopy $size to null:" MiB/s
    emit_ceiling plain-read "nbdkit file plugin, raw" file MiB/s
    emit_ceiling plain-read "nbdcopy raw file, no server" noserver MiB/s
    unserve_three
    reset_results
fi

if want_row randread-alloc; then
    bench_need fio
    fio_has_nbd || { echo "$0: this fio has no nbd engine" >&2; exit 1; }
    if test "${RANDREAD_DATA:-falloc}" = random; then
        raw=$workdir/random-$rsize.raw
        make_random_raw "$raw" "$rsize"
        img=$(qcow2_of "$raw")
    else
        raw=$workdir/falloc-$rsize.raw
        img=$workdir/falloc-$rsize-$cluster.qcow2
        test -f "$raw" || fallocate -l "$rsize" "$raw"
        test -f "$img" || qemu-img create -q -f qcow2 \
            -o cluster_size="$cluster",preallocation=falloc "$img" "$rsize"
    fi
    serve_three "$img" "$raw"
    randread_once () { result=$(fio_iops "${nbd_uri[$1]}" randread); }
    echo "randread-alloc: fio 4K randread QD32 x ${NJOBS:-2}, $rsize allocated, IOPS" >&2
    alternate "$rounds" randread_once ours qemu file
    emit_row randread-alloc "fio 4K randread QD32 x 2, $rsize allocated (${RANDREAD_DATA:-falloc})" IOPS
    emit_ceiling randread-alloc "nbdkit file plugin, raw" file IOPS
    unserve_three
    reset_results
fi
