#!/usr/bin/env bats
# Rewrites through the compress filter (which QEMU's compress driver
# refuses): clusters already holding data, compressed or not, are
# written again, whole, unaligned, in pieces smaller than a cluster and
# in pieces written at the same time.  Every time qemu-img check must
# find nothing (no leak: old space is released) and the guest view must
# be the reference file's.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load compress-functions

SIZE=$((8 * 1024 * 1024 - 1536))

setup_file ()
{
    cd "$BATS_FILE_TMPDIR"
    $MAKE_DISK_IMAGE --seed 3 "$SIZE" disk.raw
}

setup ()
{
    compress_requires
    test -x /usr/bin/python3 || skip "/usr/bin/python3 is not installed"
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    cd "$BATS_TEST_TMPDIR"
}

# overwrite_case CREATE-OPTIONS SEED [convert]: copy the disk in through
# the filter (or with `qemu-img convert -c` when the third argument is
# "convert"), then overwrite parts of it through the filter.
overwrite_case ()
{
    local opts=$1 seed=$2 how=${3:-filter} cs
    echo "== $opts seed $seed ($how)"
    rm -f img.qcow2
    cp "$BATS_FILE_TMPDIR/disk.raw" ref.raw
    if test "$how" = convert; then
        qemu-img convert -c -f raw -O qcow2 -o "$opts" ref.raw img.qcow2
    else
        qemu-img create -q -f qcow2 -o "$opts" img.qcow2 "$SIZE"
        compress_copy ref.raw img.qcow2
    fi
    cs=$(cluster_size_of img.qcow2)
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=img.qcow2
    $COMPRESS_OVERWRITE "$uri" ref.raw "$cs" "$seed"
    stop_server "$nbdkit_pid"
    check_clean img.qcow2
    qemu-img compare -f qcow2 -F raw img.qcow2 ref.raw
    qemu-img convert -f qcow2 -O raw img.qcow2 back.raw
    cmp ref.raw back.raw
}

@test "compress rewrite: aligned, unaligned, sub-cluster, concurrent (zlib, zstd)" {
    overwrite_case compression_type=zlib 1
    overwrite_case compression_type=zstd 2
}

@test "compress rewrite: v2, extended L2, small clusters, 1-bit refcounts" {
    overwrite_case compat=0.10 3
    overwrite_case extended_l2=on 4
    overwrite_case cluster_size=512 5
    overwrite_case cluster_size=4K,refcount_bits=1 6
}

@test "compress rewrite: over clusters packed by qemu-img convert -c" {
    overwrite_case compression_type=zlib 7 convert
    overwrite_case compression_type=zstd,extended_l2=on 8 convert
}

@test "compress rewrite: random workload (writes, zero, trim, two connections)" {
    local opts seed=10 cs
    for opts in compression_type=zlib compression_type=zstd,extended_l2=on \
                compat=0.10,cluster_size=4K; do
        echo "== $opts"
        rm -f img.qcow2
        cp "$BATS_FILE_TMPDIR/disk.raw" ref.raw
        qemu-img create -q -f qcow2 -o "$opts" img.qcow2 "$SIZE"
        compress_copy ref.raw img.qcow2
        cs=$(cluster_size_of img.qcow2)
        start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=img.qcow2
        /usr/bin/python3 "$BATS_TEST_DIRNAME/write-workload.py" run \
            --uri "$uri" --reference ref.raw --seed $((seed++)) --ops 200 \
            --cluster-size "$cs"
        stop_server "$nbdkit_pid"
        check_clean img.qcow2
        qemu-img compare -f qcow2 -F raw img.qcow2 ref.raw
        [ "$(check_field img.qcow2 compressed-clusters)" -gt 0 ]
    done
}

@test "compress rewrite: freed space is used again" {
    local first second third
    qemu-img create -q -f qcow2 img.qcow2 "$SIZE"
    compress_copy "$BATS_FILE_TMPDIR/disk.raw" img.qcow2
    first=$(stat -c %s img.qcow2)
    # Every cluster is written again: the new copies go to new space,
    # the old space is released at the final flush...
    compress_copy "$BATS_FILE_TMPDIR/disk.raw" img.qcow2
    check_clean img.qcow2
    second=$(stat -c %s img.qcow2)
    # ... and the third round fills it instead of growing the file.
    compress_copy "$BATS_FILE_TMPDIR/disk.raw" img.qcow2
    check_clean img.qcow2
    third=$(stat -c %s img.qcow2)
    echo "file size after each copy: $first $second $third"
    [ "$third" -le $((second * 105 / 100)) ]
    qemu-img compare "$BATS_FILE_TMPDIR/disk.raw" img.qcow2
}

@test "compress rewrite: zeroing part of a cluster keeps it compressed" {
    local before after
    cp "$BATS_FILE_TMPDIR/disk.raw" ref.raw
    qemu-img create -q -f qcow2 img.qcow2 "$SIZE"
    compress_copy ref.raw img.qcow2
    before=$(check_field img.qcow2 compressed-clusters)
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=img.qcow2
    # Every 256 KiB: 4 KiB inside a cluster, and 8 KiB across a cluster
    # boundary; the same zeroes go into the reference.
    nbdsh -u "$uri" -c "
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
ref = open('ref.raw', 'r+b')
for off in range(4096, $SIZE - 3 * 65536, 256 * 1024):
    for o, n in ((off, 4096), (off + 2 * 65536 - 4096, 8192)):
        h.zero(n, o)
        ref.seek(o)
        ref.write(bytes(n))
h.flush()
"
    stop_server "$nbdkit_pid"
    check_clean img.qcow2
    qemu-img compare -f qcow2 -F raw img.qcow2 ref.raw
    after=$(check_field img.qcow2 compressed-clusters)
    echo "compressed clusters: $before before, $after after"
    [ "$after" -ge "$before" ]
}
