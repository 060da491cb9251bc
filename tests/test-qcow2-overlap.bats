#!/usr/bin/env bats
# The overlap check (common/qcow2/overlap.c) against in-place guest
# writes: an L2 entry of a hostile image (COPIED, refcount 1) names a
# refcount block or another L2 table, the tables QEMU's default
# overlap-check=cached guards besides the fixed ones.  A write there
# would land on the table, and the next write-back of the cached table
# would then destroy the acknowledged data.  The write must fail, the
# image be marked corrupt (qemu-img info), and the table be intact.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

# make_hostile NAME: $T/img, the crafted image rc-NAME of craft-seeds.py
# (guest cluster 0 mapped onto metadata); $T/before, the cluster guest
# offset 0 maps to; $host, its offset.
make_hostile ()
{
    T=$BATS_TEST_TMPDIR
    local craft=$TESTS_SRCDIR/fuzz/craft-seeds.py
    /usr/bin/python3 "$craft" --good "$T/good"
    /usr/bin/python3 "$craft" "$T/good" "$T/bad" >/dev/null
    cp "$T/bad/rc-$1.qcow2" "$T/img"
    host=$(/usr/bin/python3 "$craft" --host-of-guest0 "$T/img")
    dd if="$T/img" of="$T/before" bs=4096 skip=$((host / 4096)) count=1 \
        status=none
}

# write_at_0_is_refused WHAT [bit]: a 4 KiB write at guest offset 0
# (after a read that caches the L2 table of the second L1 entry), then a
# flush: the write fails with EIO, the server names WHAT, the image is
# marked corrupt (as qemu-img info says, or with "bit", for an image
# QEMU will not open, as the header's incompatible bit 1 says) and the
# cluster at $host is what it was.
write_at_0_is_refused ()
{
    start_nbdkit "$QCOW2_PLUGIN" file="$T/img"
    run timeout 60 nbdsh -u "$uri" -c 'h.pread(4096, 2 << 20)' \
        -c 'h.pwrite(b"\xa5" * 4096, 0, nbd.CMD_FLAG_FUA)'
    assert_failure
    assert_output --partial "Input/output error"
    run nbdsh -u "$uri" -c 'h.flush()'
    stop_server "$nbdkit_pid"
    run cat "$nbdkit_log"
    assert_output --regexp "corrupt: write to 0x[0-9a-f]+ would overlap the $1 at"

    dd if="$T/img" of="$T/after" bs=4096 skip=$((host / 4096)) count=1 \
        status=none
    run cmp "$T/before" "$T/after"
    assert_success
    if test "${2:-}" = bit; then
        run od -An -tx1 -j79 -N1 "$T/img"
        assert_output " 02"
    else
        run qemu-img info --output=json "$T/img"
        assert_output --partial '"corrupt": true'
    fi
}

@test "overlap: an in-place write onto a refcount block is refused" {
    requires qemu-img qemu-io nbdsh
    make_hostile data-is-refblock
    write_at_0_is_refused "refcount block"
}

@test "overlap: an in-place write onto another, cached L2 table is refused" {
    requires qemu-img qemu-io nbdsh
    make_hostile data-is-other-l2
    write_at_0_is_refused "L2 table"
}

# The same through the allocation path: the refcount of the refcount
# block is dropped to 0, so a new data cluster would be handed out on it.
@test "overlap: a new data cluster is never a refcount block" {
    requires qemu-img qemu-io nbdsh
    make_hostile rc0-refblock
    start_nbdkit "$QCOW2_PLUGIN" file="$T/img"
    rb=$(/usr/bin/python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
print(struct.unpack_from(">Q", d, struct.unpack_from(">Q", d, 48)[0])[0])' "$T/img")
    dd if="$T/img" of="$T/rb-before" bs=4096 skip=$((rb / 4096)) count=1 \
        status=none
    # Unallocated guest clusters, each needing a new data cluster.
    run nbdsh -u "$uri" -c '
for i in range(16):
    h.pwrite(b"\xa5" * 4096, (1 << 20) + i * 4096)
h.flush()'
    assert_failure
    stop_server "$nbdkit_pid"
    run cat "$nbdkit_log"
    assert_output --regexp "corrupt: write to 0x[0-9a-f]+ would overlap the refcount block at"
    run qemu-img info --output=json "$T/img"
    assert_output --partial '"corrupt": true'
    dd if="$T/img" of="$T/rb-after" bs=4096 skip=$((rb / 4096)) count=1 \
        status=none
    run cmp "$T/rb-before" "$T/rb-after"
    assert_success
}

# The encryption header is metadata too (repair counts it).  Its length
# is the image's to choose and not bounded by the format: here 1 TiB, in
# a sparse file of 1 TiB, over the guest's data cluster.  The index
# takes at most 64 MiB of it (man page, CORRUPT IMAGES), so the image
# opens for writing at once, and the write there is still refused.
@test "overlap: an in-place write onto the encryption header area is refused; a huge one costs nothing" {
    requires qemu-img qemu-io nbdsh
    T=$BATS_TEST_TMPDIR
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/img" 4M
    qemu-io -f qcow2 -c "write -P 0x31 0 64k" "$T/img" >/dev/null
    host=$(/usr/bin/python3 "$TESTS_SRCDIR/fuzz/craft-seeds.py" \
        --host-of-guest0 "$T/img")
    # A header extension (qcow2.txt "Header extensions") in front of the
    # others: magic, length 16, offset, length.
    /usr/bin/python3 - "$T/img" "$host" <<'PY'
import struct, sys
path, host = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    d = bytearray(f.read(4096))
    start = struct.unpack_from(">I", d, 100)[0]      # header_length
    ext = struct.pack(">II", 0x0537BE77, 16) + struct.pack(">QQ", host, 1 << 40)
    d[start:4096] = (ext + bytes(d[start:4096]))[:4096 - start]
    f.seek(0)
    f.write(d)
    f.truncate(1 << 40)
PY
    dd if="$T/img" of="$T/before" bs=4096 skip=$((host / 4096)) count=1 \
        status=none
    write_at_0_is_refused "encryption header" bit
}
