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
    compress_requires_python_nbd
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
    cp "$BATS_FILE_TMPDIR/disk.raw" ref.raw || return 1
    if test "$how" = convert; then
        qemu-img convert -c -f raw -O qcow2 -o "$opts" ref.raw img.qcow2 || return 1
    else
        qemu-img create -q -f qcow2 -o "$opts" img.qcow2 "$SIZE" || return 1
        compress_copy ref.raw img.qcow2 || return 1
    fi
    cs=$(cluster_size_of img.qcow2) || return 1
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=img.qcow2 || return 1
    $COMPRESS_OVERWRITE "$uri" ref.raw "$cs" "$seed" || return 1
    stop_server "$nbdkit_pid" || return 1
    check_clean img.qcow2 || return 1
    qemu-img compare -f qcow2 -F raw img.qcow2 ref.raw || return 1
    qemu-img convert -f qcow2 -O raw img.qcow2 back.raw || return 1
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

# A hostile image maps guest cluster 0 onto its own metadata, with
# refcounts that agree (tests/fuzz/craft-seeds.py).  A compressed
# rewrite of that cluster releases the old space (which would punch the
# metadata away) or, for data that does not compress, writes in place:
# either way the write must fail, the image be marked corrupt and the
# metadata stay as it was.
@test "compress rewrite: clusters mapped onto metadata are never released or overwritten" {
    requires qemu-io
    local name data host
    qemu-img create -q -f qcow2 -o cluster_size=4096 good 4M
    qemu-io -f qcow2 -c "write -P 0x31 0 12k" -c "write -P 0x32 2M 4k" \
        good >/dev/null
    qemu-img snapshot -c one good
    qemu-io -f qcow2 -c "write -P 0x33 4k 4k" good >/dev/null
    /usr/bin/python3 "$TESTS_SRCDIR/fuzz/craft-seeds.py" good bad >/dev/null

    for name in l1 l2 reftable refblock snapshot-table; do
        for data in 'b"compressible" * 341 + b"abcd"' \
                    'random.randbytes(4096)'; do
            echo "== data cluster 0 is the $name; writing $data"
            cp "bad/rc-data-is-$name.qcow2" img
            host=$(/usr/bin/python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
l1 = struct.unpack_from(">Q", d, 40)[0]
l2 = struct.unpack_from(">Q", d, l1)[0] & 0x00fffffffffffe00
print(struct.unpack_from(">Q", d, l2)[0] & 0x00fffffffffffe00)' img)
            dd if=img of=before bs=4096 skip=$((host / 4096)) count=1 \
                status=none
            start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=img
            run nbdsh -u "$uri" -c 'import random' \
                -c "h.pwrite($data, 0)" -c 'h.flush()'
            assert_failure
            assert_output --partial "Input/output error"
            stop_server "$nbdkit_pid"
            cat "$nbdkit_log"
            grep -q "qcow2 image is corrupt: .*overlap" "$nbdkit_log"
            dd if=img of=after bs=4096 skip=$((host / 4096)) count=1 \
                status=none
            cmp before after
            qemu-img info --output=json img | grep -q '"corrupt": true'
        done
    done
}
