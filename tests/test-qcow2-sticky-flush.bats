#!/usr/bin/env bats
# Errors are sticky: once the engine has marked the image corrupt, no
# later flush reports success, on any connection, and nothing a flush
# or a FUA write reported durable is lost (write-state.h states the
# rule).  The hostile image (tests/fuzz/craft-seeds.py) maps guest
# offset 0 onto its own L1 table, so a write there marks it corrupt.
# Found: a later flush returned success while the writes acknowledged
# before it were dropped at close.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load hostile-functions

setup ()
{
    requires qemu-img qemu-io nbdsh
    T=$BATS_TEST_TMPDIR
    make_hostile_images "$T" "write -P 0x33 4k 4k"
    img=$T/img
    cp "$T/bad/rc-data-is-l1.qcow2" "$img"
}

# read_pattern BYTE OFFSET LENGTH: qemu-io (the oracle) finds BYTE
# everywhere in that range of the image, with the server stopped.
read_pattern ()
{
    run qemu-io -f qcow2 -r -c "read -P $1 $2 $3" "$img"
    echo "$output"
    assert_success
    refute_output --partial "Pattern verification failed"
}

@test "sticky flush: after the image is marked corrupt every flush fails, and flushed data survives" {
    start_nbdkit "$QCOW2_PLUGIN" file="$img"
    run nbdsh -u "$uri" -c '
import errno

def fails_eio(what, f):
    try:
        f()
    except nbd.Error as e:
        assert e.errnum == errno.EIO, (what, e)
        print(what, "failed:", e)
        return
    raise AssertionError(what + " succeeded")

# Durable before the corruption: flushed, and written with FUA.
h.pwrite(b"\x41" * 8192, 1024 * 1024)
h.flush()
h.pwrite(b"\x42" * 4096, 1536 * 1024, nbd.CMD_FLAG_FUA)
# Acknowledged, not flushed: a new cluster in a new L2 table.
h.pwrite(b"\x43" * 4096, 3 * 1024 * 1024)

fails_eio("write onto the L1 table", lambda: h.pwrite(b"\xa5" * 4096, 0))
fails_eio("flush", h.flush)
fails_eio("second flush", h.flush)
fails_eio("later write", lambda: h.pwrite(b"\x44" * 4096, 1024 * 1024))
fails_eio("FUA write", lambda: h.pwrite(b"\x45" * 4096, 2560 * 1024,
                                        nbd.CMD_FLAG_FUA))
fails_eio("zero", lambda: h.zero(4096, 1024 * 1024))
# Reads go on and see what was acknowledged.
assert h.pread(8192, 1024 * 1024) == b"\x41" * 8192
assert h.pread(4096, 3 * 1024 * 1024) == b"\x43" * 4096
'
    echo "$output"
    assert_success
    # Another connection is told too.
    run nbdsh -u "$uri" -c 'h.flush()'
    echo "$output"
    assert_failure
    assert_output --partial "Input/output error"
    stop_server "$nbdkit_pid"
    cat "$nbdkit_log"
    run grep -c "corrupt: write to .* would overlap the L1 table" "$nbdkit_log"
    assert_output 1
    run grep "closed with changes that may not have reached the disk" \
        "$nbdkit_log"
    assert_success

    run qemu-img info --output=json "$img"
    assert_output --partial '"corrupt": true'
    # What the client was told is durable reads back; the metadata the
    # refused write aimed at is intact (the data it already had reads).
    read_pattern 0x41 1M 8k
    read_pattern 0x42 1536k 4k
    read_pattern 0x32 2M 4k
    read_pattern 0x31 8k 4k
}

# The write acknowledged without FUA before the corruption: its flush
# failed, so it may be lost, but the client knew.  If the flush had
# come first, it would be there.
@test "sticky flush: a write flushed before the corruption reads back" {
    start_nbdkit "$QCOW2_PLUGIN" file="$img"
    run nbdsh -u "$uri" \
        -c 'h.pwrite(b"\x43" * 4096, 3 * 1024 * 1024)' \
        -c 'h.flush()' \
        -c '
try:
    h.pwrite(b"\xa5" * 4096, 0)
except nbd.Error:
    pass
else:
    raise AssertionError("the write onto the L1 table succeeded")
try:
    h.flush()
except nbd.Error:
    pass
else:
    raise AssertionError("the flush after the corruption succeeded")
'
    echo "$output"
    assert_success
    stop_server "$nbdkit_pid"
    read_pattern 0x43 3M 4k
}
