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

# The checks themselves must fail when they should, also where bats
# does not stop at a failing command (f || ..., if f; ...).

@test "harness: a server that crashes at start-up is not taken for a refusal" {
    # SIGKILL: the sanitizer runtime (preloaded in that build) would
    # report a SIGSEGV as a finding of its own.
    printf '#!/bin/sh\necho "nbdkit: error: no such thing"\nkill -KILL $$\n' \
        > "$BATS_TEST_TMPDIR/crashing-nbdkit"
    chmod +x "$BATS_TEST_TMPDIR/crashing-nbdkit"
    NBDKIT=$BATS_TEST_TMPDIR/crashing-nbdkit
    run assert_startup_refused 'no such thing' memory 1M
    assert_failure
    assert_output --partial "did not refuse cleanly: exit status 137"
    # ... and the helper fails by itself, without errexit.
    if assert_startup_refused 'no such thing' memory 1M; then
        fail "assert_startup_refused passed a crash under if"
    fi
}

@test "harness: check_image and map_of fail without errexit" {
    requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy
    local img=$BATS_TEST_TMPDIR/disk.qcow2
    qemu-img create -q -f qcow2 "$img" 1M
    qemu-io -f qcow2 -c 'write -P 0x55 0 4k' "$img" >/dev/null
    truncate -s 1M "$BATS_TEST_TMPDIR/zeroes.raw"
    if REF=$BATS_TEST_TMPDIR/zeroes.raw check_image "$img"; then
        fail "check_image passed with the wrong reference"
    fi
    check_image "$img"
    if map_of "nbd+unix:///?socket=$BATS_TEST_TMPDIR/none.sock" >/dev/null; then
        fail "map_of passed without a server"
    fi
}

@test "harness: kill_write_server fails when the server died before the kill" {
    load "$BATS_TEST_DIRNAME/write-functions.sh"
    start_nbdkit memory 1M
    server_pid=$nbdkit_pid server_log=$nbdkit_log
    kill -KILL "$server_pid"
    while server_alive "$server_pid"; do sleep 0.05; done
    run kill_write_server
    assert_failure
    assert_output --partial "died before the kill"
    # The server's crash is known: teardown need not report it again.
    _servers=()
}
