#!/usr/bin/env bats
# The test helpers themselves, checked with nbdkit's own plugins and
# QEMU, so that a broken harness cannot make the other tests pass.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

@test "harness: start_nbdkit serves, map_of merges, teardown stops it" {
    requires nbdinfo
    truncate -s 1M "$BATS_TEST_TMPDIR/disk"
    start_nbdkit file "$BATS_TEST_TMPDIR/disk"
    [ "$(nbdinfo --size "$uri")" -eq 1048576 ]
    server_alive "$nbdkit_pid"
    # A sparse raw file is one hole: a single merged run.
    [ "$(map_of "$uri")" = "0 1048576 3" ]
}

@test "harness: qemu-nbd and nbdkit agree on a qcow2 read by qemu's own raw view" {
    requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy
    img=$BATS_TEST_TMPDIR/disk.qcow2
    qemu-img create -q -f qcow2 "$img" 2M
    qemu-io -f qcow2 -c 'write -P 0x55 64k 64k' "$img" >/dev/null
    start_qemu_nbd "$img"
    copy_export "$qemu_uri" "$BATS_TEST_TMPDIR/out"
    qemu-img convert -O raw "$img" "$BATS_TEST_TMPDIR/ref"
    cmp "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/ref"
    [ "$(map_of "$qemu_uri")" = "$(printf '0 65536 3\n65536 65536 0\n131072 1966080 3')" ]
}

@test "harness: a server that fails at start-up is reported, not waited for" {
    assert_startup_refused 'no-such-parameter' memory 1M no-such-parameter=1
}
