#!/usr/bin/env bats
# The qcow2 filter (filters/qcow2): the plugin below holds the image,
# the filter serves its guest view.  The oracle is QEMU, as for the
# plugin: the read matrix of test-qcow2-read-matrix.bats through the
# filter over nbdkit's file plugin and over its nbd plugin (connected
# to qemu-nbd serving the image file raw) gives the bytes of `qemu-img
# convert` and the map of qemu-nbd.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy
    requires_module "$QCOW2_FILTER"
    img=$BATS_TEST_TMPDIR/test.qcow2
}

# ----------------------------------------------------------------------
# Reading: the read matrix over the file and nbd plugins.

@test "filter read matrix over file: v2, 512 B clusters" {
    QCOW2_VIA=filter-file matrix 0.10 512 16
}
@test "filter read matrix over file: v3, 4 KiB clusters, 64-bit refcounts" {
    QCOW2_VIA=filter-file matrix 1.1 4096 64
}
@test "filter read matrix over file: v3, 64 KiB clusters, 2-bit refcounts" {
    QCOW2_VIA=filter-file matrix 1.1 65536 2
}
@test "filter read matrix over file: v2, 2 MiB clusters" {
    QCOW2_VIA=filter-file matrix 0.10 2097152 16
}
@test "filter read matrix over file: v3, 2 MiB clusters, 8-bit refcounts" {
    QCOW2_VIA=filter-file matrix 1.1 2097152 8
}
@test "filter read over file: qemu-img convert, v3, 64 KiB clusters" {
    QCOW2_VIA=filter-file converted 1.1 65536
}

@test "filter read matrix over nbd: v3, 512 B clusters, 1-bit refcounts" {
    QCOW2_VIA=filter-nbd matrix 1.1 512 1
}
@test "filter read matrix over nbd: v2, 4 KiB clusters" {
    QCOW2_VIA=filter-nbd matrix 0.10 4096 16
}
@test "filter read matrix over nbd: v3, 64 KiB clusters, 16-bit refcounts" {
    QCOW2_VIA=filter-nbd matrix 1.1 65536 16
}
@test "filter read matrix over nbd: v3, 2 MiB clusters, 64-bit refcounts" {
    QCOW2_VIA=filter-nbd matrix 1.1 2097152 64
}
@test "filter read over nbd: qemu-img convert, v2, 512 B clusters" {
    QCOW2_VIA=filter-nbd converted 0.10 512
}

# ----------------------------------------------------------------------
# Reading every kind of image (test-qcow2-read-features.bats' cases).

@test "filter reads: compressed (zlib, zstd), extended L2, qcow v1" {
    local T=$BATS_TEST_TMPDIR type
    make_source "$T/src.raw" 3M
    for type in zlib zstd; do
        qemu-img convert -c -O qcow2 -o compression_type=$type \
            "$T/src.raw" "$img"
        run qemu-img check "$img"
        assert_output --regexp ' [1-9][0-9.]*% compressed clusters'
        QCOW2_VIA=filter-file REF=$T/src.raw check_image "$img"
        QCOW2_VIA=filter-nbd REF=$T/src.raw check_image "$img"
    done
    rm -f "$img"
    qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k "$img" 4M
    qemu-io -f qcow2 -c 'write -P 1 4k 4k' -c 'write -z 64k 8k' \
        -c 'write -P 2 1M 100k' -c 'write -z -u 1M 4k' "$img" >/dev/null
    QCOW2_VIA=filter-nbd check_image "$img"
    qemu-img convert -O qcow "$T/src.raw" "$T/v1.qcow"
    QCOW2_VIA=filter-file QEMU_FMT=qcow check_image "$T/v1.qcow"
}

@test "filter reads: internal snapshots (snapshot=), read-only export" {
    local T=$BATS_TEST_TMPDIR
    qemu-img create -q -f qcow2 -o cluster_size=4k "$img" 4M
    qemu-io -f qcow2 -c 'write -P 1 0 1M' "$img" >/dev/null
    qemu-img snapshot -c first "$img"
    qemu-io -f qcow2 -c 'write -P 2 512k 1M' -c 'write -z 3M 64k' \
        "$img" >/dev/null
    qemu-img snapshot -c second "$img"
    qemu-img resize -q "$img" 6M
    qemu-io -f qcow2 -c 'write -P 3 5M 1M' "$img" >/dev/null
    QCOW2_VIA=filter-file check_snapshot "$img" first
    QCOW2_VIA=filter-nbd check_snapshot "$img" 2
    QCOW2_VIA=filter-file check_image "$img"
    QCOW2_VIA=filter-file start_ours "$img" snapshot=first
    run nbdinfo --json "$uri"
    assert_success
    assert_output --partial '"is_read_only": true'
}

@test "filter reads: encrypted (passphrase=), LUKS and legacy AES" {
    local T=$BATS_TEST_TMPDIR secret=secret,id=sec0,data=filter-pass opts
    for opts in encrypt.format=luks,encrypt.iter-time=10 encrypt.format=aes; do
        rm -f "$img"
        qemu_img_create -q -f qcow2 --object "$secret" \
            -o "$opts",encrypt.key-secret=sec0 "$img" 4M
        qemu-io --object "$secret" --image-opts \
            "driver=qcow2,file.filename=$img,encrypt.key-secret=sec0" \
            -c 'write -P 0x5a 1000 300k' -c 'write -z 1M 64k' >/dev/null
        qemu-img convert --object "$secret" --image-opts \
            "driver=qcow2,file.filename=$img,encrypt.key-secret=sec0" \
            -O raw "$T/ref.raw"
        echo -n filter-pass > "$T/pass"
        QCOW2_VIA=filter-nbd start_ours -r "$img" passphrase=+"$T/pass"
        copy_export "$uri" "$T/ours.raw"
        cmp "$T/ours.raw" "$T/ref.raw"
        cleanup_servers
    done
}

# ----------------------------------------------------------------------
# Backing and data files: the names in an image are not names on the
# layer below.  Nothing is opened unless the operator says how.

@test "filter backing: an image naming a backing file is refused without backing=" {
    local T=$BATS_TEST_TMPDIR
    make_chain "$T/chain" 64k
    assert_startup_refused --partial \
        "names backing file sub/mid.qcow2, which the filter does not look for" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2"
    assert_output --partial "backing=none"
    # Options the filter does not take, or that need another.
    assert_startup_refused --partial "use backing=local" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=auto
    assert_startup_refused --partial "backing-dir= only applies with backing=local" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=none \
        backing-dir="$T"
}

@test "filter backing: backing=none serves the top image alone" {
    local T=$BATS_TEST_TMPDIR alone
    make_chain "$T/chain" 64k
    alone='json:{"driver": "qcow2", "backing": null,
                 "file": {"driver": "file", "filename": "'$T/chain/top.qcow2'"}}'
    qemu-img convert -f qcow2 -O raw "$alone" "$T/alone.raw"
    QEMU_IMG_FOR_MAP=$alone REF=$T/alone.raw QCOW2_VIA=filter-nbd \
        check_image "$T/chain/top.qcow2" backing=none
}

@test "filter backing: backing=local follows the chain from backing-dir" {
    local T=$BATS_TEST_TMPDIR
    make_chain "$T/chain" 4k
    # Relative names need backing-dir=.
    assert_startup_refused --partial \
        "backing file sub/mid.qcow2 is a relative name: give backing-dir=DIR" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=local
    # From another directory: names are taken from backing-dir, not from
    # nbdkit's working directory.
    cd /
    QCOW2_VIA=filter-nbd check_image "$T/chain/top.qcow2" backing=local \
        backing-dir="$T/chain"
    # An absolute name needs no backing-dir.
    qemu-img create -q -f qcow2 -b "$T/chain/sub/mid.qcow2" -F qcow2 \
        "$T/abs.qcow2" 8M
    qemu-io -f qcow2 -c 'write -P 0xd1 1M 5k' "$T/abs.qcow2" >/dev/null
    QCOW2_VIA=filter-file check_image "$T/abs.qcow2" backing=local
}

@test "filter backing: a wrong backing-dir fails with the path it tried" {
    local T=$BATS_TEST_TMPDIR
    make_chain "$T/chain" 64k
    mkdir "$T/empty"
    assert_startup_refused --partial "$T/empty/sub/mid.qcow2" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=local \
        backing-dir="$T/empty"
}

@test "filter backing: backing=local keeps the trust checks (no FIFO)" {
    local T=$BATS_TEST_TMPDIR
    mkfifo "$T/fifo"
    qemu-img create -q -f qcow2 -b fifo -F raw -u "$img" 1M
    assert_startup_refused_within 20000 --partial \
        "only a regular file or a block device can be one" \
        --filter="$QCOW2_FILTER" file "$img" backing=local backing-dir="$T"
}

@test "filter data file: refused unless data-file= or backing=local" {
    local T=$BATS_TEST_TMPDIR
    mkdir "$T/d"
    qemu-img create -q -f qcow2 -o data_file="$T/d/x.data" "$T/d/x.qcow2" 2M
    qemu-io -f qcow2 -c 'write -P 0x33 0 1M' "$T/d/x.qcow2" >/dev/null
    assert_startup_refused --partial \
        "names external data file $T/d/x.data, which the filter does not look for" \
        --filter="$QCOW2_FILTER" file "$T/d/x.qcow2"
    assert_output --partial "data-file=PATH"
    # backing=none opens nothing the image names either.
    assert_startup_refused --partial "give data-file=PATH" \
        --filter="$QCOW2_FILTER" file "$T/d/x.qcow2" backing=none
    QCOW2_VIA=filter-file check_image "$T/d/x.qcow2" data-file="$T/d/x.data"
    QCOW2_VIA=filter-nbd check_image "$T/d/x.qcow2" backing=local
    # A relative name from backing-dir (QEMU takes it from its working
    # directory: it is told where the file is instead).
    cd "$T/d"
    qemu-img create -q -f qcow2 -o data_file=y.data y.qcow2 2M
    qemu-io -f qcow2 -c 'write -P 0x44 64k 1M' y.qcow2 >/dev/null
    cd /
    local qemu_view
    qemu_view='json:{"driver": "qcow2", "data-file": {"driver": "file", "filename": "'$T/d/y.data'"},
                     "file": {"driver": "file", "filename": "'$T/d/y.qcow2'"}}'
    qemu-img convert -O raw "$qemu_view" "$T/y.raw"
    QEMU_IMG_FOR_MAP=$qemu_view REF=$T/y.raw QCOW2_VIA=filter-file \
        check_image "$T/d/y.qcow2" backing=local backing-dir="$T/d"
}
