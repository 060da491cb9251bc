#!/usr/bin/env bats
# The decompressed-cluster cache (common/qcow2/cluster-cache.h) never
# serves stale data: one server keeps its cache across reads while
# compressed clusters are rewritten (through the plugin and through the
# compress filter), trimmed, and their host space reused by different
# compressed clusters with the same descriptors.  Every 4K read is
# compared with the expected guest view, and at the end so is
# `qemu-img convert` of the image.  Multi-block streams (2M clusters
# by qemu-img convert -c) read byte-identical, whole and in pieces.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load compress-functions

WORKLOAD="/usr/bin/python3 $BATS_TEST_DIRNAME/compressed-cache-workload.py"

setup ()
{
    compress_requires_python_nbd
    cd "$BATS_TEST_TMPDIR"
}

# quarter_random SIZE CLUSTER FILE: each cluster a quarter random bytes
# and the rest zeroes, so all compress to about the same length.
quarter_random ()
{
    /usr/bin/python3 -c '
import random, sys
size, cs = int(sys.argv[1]), int(sys.argv[2])
r = random.Random(1)
with open(sys.argv[3], "wb") as f:
    for _ in range(size // cs):
        f.write(r.randbytes(cs // 4) + bytes(cs - cs // 4))' "$@"
}

# expect_image IMG REF: the image is clean and reads as REF.
expect_image ()
{
    check_clean "$1"
    qemu-img convert -f qcow2 -O raw "$1" back.raw
    cmp "$2" back.raw
}

# cache_case TYPE MODE HOW [FILTER]: image made by HOW (filter or
# convert), then the workload through the plugin or, with FILTER, the
# compress filter.
cache_case ()
{
    local type=$1 mode=$2 how=$3 filter=${4:-} size=$((4 * 1024 * 1024))
    local cs=65536
    echo "== $type $mode (image by $how, ${filter:-plugin only})"
    rm -f img.qcow2
    quarter_random $size $cs ref.raw
    if test "$how" = convert; then
        qemu-img convert -c -f raw -O qcow2 -o compression_type=$type \
            ref.raw img.qcow2
    else
        # One request at a time, so the clusters lie in guest order and
        # which new descriptors repeat old ones does not depend on timing
        # (compress_copy's parallel requests land in arrival order).
        qemu-img create -q -f qcow2 -o compression_type=$type img.qcow2 $size
        nbdkit -U - --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=img.qcow2 \
            --run 'nbdcopy --connections=1 --requests=1 --flush ref.raw "$uri"'
    fi
    start_nbdkit ${filter:+--filter="$COMPRESS_FILTER"} "$QCOW2_PLUGIN" \
        file=img.qcow2
    $WORKLOAD "$uri" img.qcow2 ref.raw $cs $mode
    stop_server "$nbdkit_pid"
    expect_image img.qcow2 ref.raw
}

@test "compressed cache: trimmed host space reused by new compressed clusters (zlib, zstd)" {
    cache_case zlib reuse filter compress
    cache_case zstd reuse filter compress
}

@test "compressed cache: compressed clusters rewritten through the compress filter" {
    cache_case zlib rewrite convert compress
    cache_case zstd rewrite filter compress
}

@test "compressed cache: compressed clusters rewritten through the plugin" {
    cache_case zlib rewrite convert
    cache_case zstd rewrite convert
}

@test "compressed cache: 2M-cluster multi-block streams by qemu-img convert -c" {
    local type
    $MAKE_DISK_IMAGE --seed 5 $((24 * 1024 * 1024)) ref.raw
    for type in zlib zstd; do
        rm -f img.qcow2
        qemu-img convert -c -f raw -O qcow2 \
            -o compression_type=$type,cluster_size=2M ref.raw img.qcow2
        start_nbdkit -r "$QCOW2_PLUGIN" file=img.qcow2
        copy_export "$uri" whole.raw
        cmp ref.raw whole.raw
        # 4K pieces at random offsets: the cache path.
        /usr/bin/python3 -c '
import nbd, random, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
ref = open(sys.argv[2], "rb").read()
r = random.Random(3)
for _ in range(400):
    off = r.randrange(0, len(ref) - 4096)
    if h.pread(4096, off) != ref[off:off + 4096]:
        sys.exit("4K read at %#x differs" % off)' "$uri" ref.raw
        stop_server "$nbdkit_pid"
    done
}
