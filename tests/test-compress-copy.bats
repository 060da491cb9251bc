#!/usr/bin/env bats
# The compress filter over the qcow2 plugin as virt-v2v -oo compressed
# uses QEMU's: nbdcopy a used-looking raw disk (files from /usr, random
# data, zero runs) into a new image.  QEMU is the judge: qemu-img check
# finds nothing, qemu-img compare finds the source, the clusters are
# compressed, and the file is no more than 10 % bigger than what
# `qemu-img convert -c` makes of the same disk.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load compress-functions

# Not a multiple of the cluster size: the last cluster is partial.
MIXED_SIZE=$((48 * 1024 * 1024 - 1536))
COMPRESSIBLE_SIZE=$((32 * 1024 * 1024))

setup_file ()
{
    cd "$BATS_FILE_TMPDIR"
    $MAKE_DISK_IMAGE --seed 1 "$MIXED_SIZE" mixed.raw
    $MAKE_DISK_IMAGE --seed 2 --compressible "$COMPRESSIBLE_SIZE" compressible.raw
}

setup ()
{
    compress_requires
    cd "$BATS_TEST_TMPDIR"
    src=$BATS_FILE_TMPDIR/mixed.raw
}

# copy_case CREATE-OPTIONS: the whole check for one kind of image.
copy_case ()
{
    local opts=$1 ours theirs compressed
    qemu-img create -q -f qcow2 -o "$opts" out.qcow2 "$MIXED_SIZE" || return 1
    compress_copy "$src" out.qcow2 || return 1
    check_clean out.qcow2 || return 1
    qemu-img compare -f raw -F qcow2 "$src" out.qcow2 || return 1
    # QEMU reads every cluster back.
    qemu-img convert -f qcow2 -O raw out.qcow2 back.raw || return 1
    cmp "$src" back.raw || return 1
    compressed=$(check_field out.qcow2 compressed-clusters) || return 1
    if test "$compressed" -le 0; then fail "no compressed clusters" || return 1; fi

    qemu-img convert -c -f raw -O qcow2 -o "$opts" "$src" ref.qcow2 || return 1
    ours=$(stat -c %s out.qcow2)
    theirs=$(stat -c %s ref.qcow2)
    echo "$opts: ours $ours bytes, qemu-img convert -c $theirs bytes"
    test "$ours" -le $((theirs * 110 / 100))
}

@test "compress copy: zlib" {
    copy_case compression_type=zlib
}

@test "compress copy: zstd" {
    copy_case compression_type=zstd
}

@test "compress copy: compressible data, >= 90% of clusters compressed" {
    local type allocated compressed
    for type in zlib zstd; do
        rm -f out.qcow2
        qemu-img create -q -f qcow2 -o compression_type=$type out.qcow2 \
            "$COMPRESSIBLE_SIZE"
        compress_copy "$BATS_FILE_TMPDIR/compressible.raw" out.qcow2
        check_clean out.qcow2
        qemu-img compare "$BATS_FILE_TMPDIR/compressible.raw" out.qcow2
        allocated=$(check_field out.qcow2 allocated-clusters)
        compressed=$(check_field out.qcow2 compressed-clusters)
        echo "$type: $compressed of $allocated clusters compressed"
        [ "$allocated" -gt 0 ]
        [ $((compressed * 100)) -ge $((allocated * 90)) ]
    done
}

@test "compress copy: image kinds (v2, extended L2, refcount widths, cluster sizes)" {
    local opts size=$((12 * 1024 * 1024 - 512))
    head -c $size "$src" > small.raw
    for opts in compat=0.10 extended_l2=on refcount_bits=1 refcount_bits=2 \
                refcount_bits=64 cluster_size=512 cluster_size=2M \
                extended_l2=on,cluster_size=16K,compression_type=zstd \
                cluster_size=4K,refcount_bits=1 compat=0.10,cluster_size=1K; do
        echo "== $opts"
        rm -f out.qcow2
        qemu-img create -q -f qcow2 -o "$opts" out.qcow2 $size
        compress_copy small.raw out.qcow2
        check_clean out.qcow2
        qemu-img compare small.raw out.qcow2
        [ "$(check_field out.qcow2 compressed-clusters)" -gt 0 ]
    done
}

@test "compress copy: compression-level" {
    local type level
    for type in zlib zstd; do
        for level in 1 9; do
            rm -f out.qcow2
            qemu-img create -q -f qcow2 -o compression_type=$type out.qcow2 \
                "$COMPRESSIBLE_SIZE"
            compress_copy "$BATS_FILE_TMPDIR/compressible.raw" out.qcow2 \
                compression-level=$level
            check_clean out.qcow2
            qemu-img compare "$BATS_FILE_TMPDIR/compressible.raw" out.qcow2
        done
    done
}

# block_sizes URI: "minimum preferred maximum" as nbdinfo reports them.
block_sizes ()
{
    nbdinfo "$1" | awk '/block_size_minimum/ { a = $2 }
                        /block_size_preferred/ { b = $2 }
                        /block_size_maximum/ { c = $2 }
                        END { print a, b, c }'
}

@test "compress copy: block size is the cluster size" {
    qemu-img create -q -f qcow2 a.qcow2 64M
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=a.qcow2
    [ "$(block_sizes "$uri")" = "65536 65536 33554432" ]

    # 2 MiB clusters: NBD's minimum is at most 64 KiB.
    qemu-img create -q -f qcow2 -o cluster_size=2M b.qcow2 64M
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=b.qcow2
    [ "$(block_sizes "$uri")" = "65536 2097152 33554432" ]

    # A size that is not a multiple of the cluster: the minimum must
    # divide it, or the last cluster could not be written.
    qemu-img create -q -f qcow2 c.qcow2 $((64 * 1024 * 1024 + 1536))
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=c.qcow2
    [ "$(block_sizes "$uri")" = "512 65536 33554432" ]
}

@test "compress copy: --dump-plugin names the deflate encoder" {
    run nbdkit "$QCOW2_PLUGIN" --dump-plugin
    assert_success
    assert_output --regexp 'qcow2_zlib_encoder=(isa-l|zlib)'
}

@test "compress copy: a plugin that cannot store compressed writes" {
    assert_startup_refused --partial "the plugin below cannot store compressed writes" \
        --filter="$COMPRESS_FILTER" memory 1M
}

@test "compress copy: images that cannot hold compressed clusters, bad levels" {
    qemu-img create -q -f qcow2 -o data_file=data.raw ext.qcow2 1M
    assert_startup_refused --partial "cannot store compressed clusters: it has an external data file" \
        --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=ext.qcow2
    qemu-img create -q -f qcow2 z.qcow2 1M
    assert_startup_refused --partial "zlib compression level 10 is out of range" \
        --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=z.qcow2 \
        compression-level=10
    assert_startup_refused --partial "compression-level must be at least 1" \
        --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file=z.qcow2 \
        compression-level=0
}
