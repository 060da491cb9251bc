#!/usr/bin/env bats
# The fuzzers' findings, kept: every file in tests/fuzz/regressions/
# (minimised crashers found by tests/fuzz/run.sh, and a few seeds that
# reach far into the format) goes through the same open / read / block
# status / write / close sequence as in the fuzzers, built by automake
# with the normal compiler (and with the sanitizers in that build).
# Nothing may crash, abort or leak.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load hostile-functions

@test "fuzz regressions: every input replays without a crash" {
    replay=$abs_top_builddir/tests/fuzz-replay
    corpus=$abs_top_srcdir/tests/fuzz/regressions
    [ -x "$replay" ] || skip "fuzz-replay is not built (make check builds it)"
    [ "$(ls "$corpus" | wc -l)" -gt 0 ]
    run "$replay" "$corpus"
    assert_success
    assert_output --partial "inputs replayed, no crash"
    refute_output --regexp 'Sanitizer|runtime error'
}

# Images whose L2 entries point (COPIED, refcount 1) at the image's own
# metadata, as tests/fuzz/craft-seeds.py makes them for the fuzzers: a
# guest write there must not land on the metadata.  The write fails with
# EIO, the image is marked corrupt (QEMU then refuses to write it too),
# and the metadata is what it was.
@test "hostile mappings: in-place writes into the image's own metadata are refused" {
    requires qemu-img qemu-io nbdsh
    local T=$BATS_TEST_TMPDIR name
    make_hostile_images "$T" "write -P 0x33 4k 4k"

    for name in l1 l2 reftable snapshot-table; do
        echo "== data cluster 0 is the $name"
        cp "$T/bad/rc-data-is-$name.qcow2" "$T/img"
        # The cluster guest offset 0 maps to (the metadata), before.
        host=$(/usr/bin/python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
l1 = struct.unpack_from(">Q", d, 40)[0]
l2 = struct.unpack_from(">Q", d, l1)[0] & 0x00fffffffffffe00
print(struct.unpack_from(">Q", d, l2)[0] & 0x00fffffffffffe00)' "$T/img")
        dd if="$T/img" of="$T/before" bs=4096 skip=$((host / 4096)) count=1 \
            status=none

        start_nbdkit "$QCOW2_PLUGIN" file="$T/img"
        run nbdsh -u "$uri" -c 'h.pwrite(b"\xa5" * 4096, 0)'
        assert_failure
        assert_output --partial "Input/output error"
        stop_server "$nbdkit_pid"
        cat "$nbdkit_log"
        grep -q "corrupt: write to .* would overlap the" "$nbdkit_log"

        dd if="$T/img" of="$T/after" bs=4096 skip=$((host / 4096)) count=1 \
            status=none
        cmp "$T/before" "$T/after"
        qemu-img info --output=json "$T/img" | grep -q '"corrupt": true'
    done
}

# The same images, discarded: releasing (and punching) the cluster a
# hostile entry maps would destroy the metadata it really holds.  The
# discard fails, the image is marked corrupt and the metadata survives.
@test "hostile mappings: discarding clusters mapped onto metadata never frees them" {
    requires qemu-img qemu-io nbdsh
    local T=$BATS_TEST_TMPDIR name
    make_hostile_images "$T"

    for name in l1 reftable; do
        echo "== data cluster 0 is the $name"
        cp "$T/bad/rc-data-is-$name.qcow2" "$T/img"
        cp "$T/img" "$T/before"

        start_nbdkit "$QCOW2_PLUGIN" file="$T/img"
        run nbdsh -u "$uri" -c 'h.trim(4096, 0)' -c 'h.flush()'
        assert_failure
        assert_output --partial "Input/output error"
        stop_server "$nbdkit_pid"
        cat "$nbdkit_log"
        grep -q "would overlap the" "$nbdkit_log"
        qemu-img info --output=json "$T/img" | grep -q '"corrupt": true'
        # Past the header (its feature bits changed) everything the image
        # had is intact; it may have grown by a new L2 table.
        cmp -i 4096 -n $(( $(stat -c %s "$T/before") - 4096 )) \
            "$T/before" "$T/img"
    done
}

# Every open counts the referenced clusters for QEMU's "metadata
# preallocation" rule (prealloc.c).  A refcount table whose 262144
# entries all name one refcount block once cost a read of a 2 MiB
# cluster per entry (512 GiB of reads); only the clusters inside the
# file count, as in QEMU, so now it costs one.
@test "hostile refcount table: one refcount block named by every entry opens at once" {
    requires qemu-img nbdinfo
    local img=$BATS_TEST_TMPDIR/img
    qemu-img create -q -f qcow2 -o cluster_size=2M "$img" 1M
    /usr/bin/python3 - "$img" <<'PY'
import struct, sys
cs = 2 << 20
with open(sys.argv[1], "r+b") as f:
    table, block = 4 * cs, 8 * cs
    f.seek(table)
    f.write(struct.pack(">Q", block) * (cs // 8))
    f.truncate(block + cs)                     # the block: zeroes
    f.seek(48)
    f.write(struct.pack(">Q", table))          # refcount_table_offset
    f.seek(56)
    f.write(struct.pack(">I", 1))              # refcount_table_clusters
PY
    # The nbdkit function (tests/functions.sh) gives the sanitizer build
    # its runtime; a hang is caught by the suite's per-test timeout.
    run nbdkit -r -U - "$QCOW2_PLUGIN" file="$img" \
        --run 'nbdinfo --size "$uri"'
    assert_success
    assert_output 1048576
}
