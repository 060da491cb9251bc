#!/usr/bin/env bats
# Reading qcow2 images made by QEMU: v2 and v3, cluster sizes 512 B to
# 2 MiB, several refcount widths, virtual sizes that are not a multiple
# of the cluster size, data, zero clusters (both forms), discards and
# holes.  The oracle is QEMU: the bytes must equal `qemu-img convert -O
# raw`, and the block status map must equal qemu-nbd's.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy
    img=$BATS_TEST_TMPDIR/test.qcow2
}

@test "read matrix: v2, 512 B clusters"          { matrix 0.10 512 16; }
@test "read matrix: v2, 4 KiB clusters"          { matrix 0.10 4096 16; }
@test "read matrix: v2, 64 KiB clusters"         { matrix 0.10 65536 16; }
@test "read matrix: v2, 2 MiB clusters"          { matrix 0.10 2097152 16; }
@test "read matrix: v3, 512 B clusters, 1-bit refcounts"   { matrix 1.1 512 1; }
@test "read matrix: v3, 512 B clusters, 32-bit refcounts"  { matrix 1.1 512 32; }
@test "read matrix: v3, 4 KiB clusters, 64-bit refcounts"  { matrix 1.1 4096 64; }
@test "read matrix: v3, 4 KiB clusters, 4-bit refcounts"   { matrix 1.1 4096 4; }
@test "read matrix: v3, 64 KiB clusters, 16-bit refcounts" { matrix 1.1 65536 16; }
@test "read matrix: v3, 64 KiB clusters, 2-bit refcounts"  { matrix 1.1 65536 2; }
@test "read matrix: v3, 2 MiB clusters, 8-bit refcounts"   { matrix 1.1 2097152 8; }
@test "read matrix: v3, 2 MiB clusters, 64-bit refcounts"  { matrix 1.1 2097152 64; }

@test "read: qemu-img convert, v2, 512 B clusters"   { converted 0.10 512; }
@test "read: qemu-img convert, v3, 4 KiB clusters"   { converted 1.1 4096; }
@test "read: qemu-img convert, v3, 64 KiB clusters"  { converted 1.1 65536; }
@test "read: qemu-img convert, v2, 2 MiB clusters"   { converted 0.10 2097152; }

@test "read: empty image from qemu-img create" {
    qemu-img create -q -f qcow2 "$img" 3M
    check_image "$img"
}

@test "read: qemu-img create with preallocation=falloc" {
    qemu-img create -q -f qcow2 -o preallocation=falloc "$img" 3M
    qemu-io -f qcow2 -c "write -P 1 64k 64k" -c "write -z 1M 64k" \
        -c "write -z -u 2M 64k" "$img" >/dev/null
    check_image "$img"
}

@test "read: an image bigger than one L1 entry's span (sparse, 1 GiB, 512 B clusters)" {
    # 512 B clusters: one L2 table maps 32 KiB, so 1 GiB needs 32768 L1
    # entries; only a few clusters are written.
    qemu-img create -q -f qcow2 -o cluster_size=512 "$img" 1G
    qemu-io -f qcow2 -c "write -P 1 0 4k" -c "write -P 2 512M 4k" \
        -c "write -P 3 $((1024 * 1024 * 1024 - 512)) 512" "$img" >/dev/null
    start_nbdkit -r "$QCOW2_PLUGIN" file="$img"
    start_qemu_nbd "$img"
    local t=$BATS_TEST_TMPDIR
    map_of "$qemu_uri" > "$t/map.qemu"
    map_of "$uri" > "$t/map.ours"
    diff -u "$t/map.qemu" "$t/map.ours"
    for off in 0 $((512 * 1024 * 1024)) $((1024 * 1024 * 1024 - 4096)); do
        nbd_pread "$uri" $off 4096 > "$t/ours"
        nbd_pread "$qemu_uri" $off 4096 > "$t/qemu"
        assert_equal "$(stat -c %s "$t/ours")" 4096
        cmp "$t/ours" "$t/qemu"
    done
}

@test "read: small l2-cache-size evicts tables and gives the same bytes" {
    local c=512 size=$((8 * 1024 * 1024 + 1536)) off cmds=() t=$BATS_TEST_TMPDIR
    qemu-img create -q -f qcow2 -o cluster_size=$c "$img" "$size"
    write_scenario "$img" $c "$size"
    # A 512 B L2 table maps 32 KiB: data in every 32 KiB makes 257
    # tables, twice the 128 that 64 KiB of cache holds.
    for ((off = 20 * c; off < size; off += 32768)); do
        cmds+=(-c "write -P 0xee $off 512")
    done
    qemu-io -f qcow2 "${cmds[@]}" "$img" >/dev/null
    qemu-img convert -f qcow2 -O raw "$img" "$t/ref.raw"
    start_nbdkit -r -v "$QCOW2_PLUGIN" file="$img" l2-cache-size=64K
    # Twice: the second pass reloads the tables the first one evicted.
    copy_export "$uri" "$t/ours.raw"
    cmp "$t/ours.raw" "$t/ref.raw"
    copy_export "$uri" "$t/ours.raw"
    cmp "$t/ours.raw" "$t/ref.raw"
    stop_server "$nbdkit_pid"
    # The cache reports what it did when the image is closed.
    run grep -Eo 'metadata cache of 128 tables of 512 bytes: [0-9]+ loaded, [0-9]+ evicted' \
        "$nbdkit_log"
    assert_success
    [[ "$output" =~ ([0-9]+)\ loaded,\ ([0-9]+)\ evicted ]]
    local loaded=${BASH_REMATCH[1]} evicted=${BASH_REMATCH[2]}
    echo "L2 tables: $loaded loaded, $evicted evicted"
    if test "$loaded" -lt $((2 * 257)) || test "$evicted" -lt $((2 * 257 - 128)); then
        fail "the L2 cache did not evict: $output"
    fi
}

@test "read: magic parameter, nbdkit ./qcow2.so IMAGE" {
    qemu-img create -q -f qcow2 "$img" 1M
    qemu-io -f qcow2 -c "write -P 7 0 512" "$img" >/dev/null
    start_nbdkit -r "$QCOW2_PLUGIN" "$img"
    [ "$(nbdinfo --size "$uri")" -eq 1048576 ]
    cmp <(nbd_pread "$uri" 0 512) <(head -c 512 /dev/zero | tr '\0' '\7')
}
