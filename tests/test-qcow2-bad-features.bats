#!/usr/bin/env bats
# Hostile and broken images for the read features: backing chains that
# loop, go too deep or name what cannot be opened; compressed clusters
# whose descriptors or payloads are wrong; bad subcluster bitmaps;
# damaged snapshot tables; external data file mistakes; broken qcow v1
# headers and tables.  Each is refused at start-up with a message, or
# fails exactly the reads that need the bad part with EIO while the rest
# still reads -- never a crash, a hang or a sanitizer report.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdinfo nbdcopy
    T=$BATS_TEST_TMPDIR
    CRAFT=$T/craft.py
    # poke IMG CODE: run CODE with `f` open on IMG for update and these
    # helpers (all integers big-endian, as in qcow2.txt).
    cat > "$CRAFT" <<'EOF'
import struct, sys
f = open(sys.argv[1], "r+b")
def get(off, fmt):
    f.seek(off); return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
def put(off, fmt, v):
    f.seek(off); f.write(struct.pack(fmt, v))
cluster_bits = get(20, ">I")
def l2_entry_offset(guest, entry_size=8):
    """File offset of the L2 entry for a guest offset."""
    l2_bits = cluster_bits - (3 if entry_size == 8 else 4)
    l1 = get(40, ">Q") + 8 * (guest >> (cluster_bits + l2_bits))
    l2 = get(l1, ">Q") & 0x00FFFFFFFFFFFE00
    assert l2, "no L2 table there"
    return l2 + entry_size * ((guest >> cluster_bits) & ((1 << l2_bits) - 1))
def snapshot_offset(n):
    """File offset of snapshot table entry n."""
    off = get(64, ">Q")
    for _ in range(n):
        extra, id_len, name_len = get(off + 36, ">I"), get(off + 12, ">H"), get(off + 14, ">H")
        off = (off + 40 + extra + id_len + name_len + 7) & ~7
    return off
exec(sys.argv[2])
EOF
}

poke ()
{
    /usr/bin/python3 "$CRAFT" "$1" "$2"
}

# refused IMG REGEX [PARAMS...]: nbdkit exits at start-up (by itself,
# not by a signal) with an error matching REGEX.
refused ()
{
    local img=$1 regex=$2; shift 2
    assert_startup_refused "$regex" -r "$QCOW2_PLUGIN" file="$img" "$@"
}

# ----------------------------------------------------------------------
# Backing chains

make_pair ()
{
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    qemu-io -f qcow2 -c 'write -P 0x11 0 64k' "$T/a.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 "$T/b.qcow2" 1M
}

@test "bad backing: an image that is its own backing file" {
    make_pair
    qemu-img rebase -u -b a.qcow2 -F qcow2 "$T/a.qcow2"
    refused "$T/a.qcow2" 'a.qcow2 is already part of the backing chain \(loop\)'
    # backing=none does not look at it.
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/a.qcow2" backing=none
    cmp <(nbd_pread "$uri" 0 4096) <(head -c 4096 /dev/zero | tr '\0' '\21')
}

@test "bad backing: a loop of two images, and one through a symlink" {
    make_pair
    qemu-img rebase -u -b b.qcow2 -F qcow2 "$T/a.qcow2"
    refused "$T/b.qcow2" 'b.qcow2 is already part of the backing chain \(loop\)'
    ln -s b.qcow2 "$T/link.qcow2"
    qemu-img rebase -u -b link.qcow2 -F qcow2 "$T/a.qcow2"
    refused "$T/b.qcow2" 'link.qcow2 is already part of the backing chain \(loop\)'
}

@test "bad backing: a chain deeper than max-chain-depth" {
    qemu-img create -q -f qcow2 "$T/c0.qcow2" 1M
    for i in 1 2 3 4; do
        qemu-img create -q -f qcow2 -b c$((i - 1)).qcow2 -F qcow2 "$T/c$i.qcow2" 1M
    done
    refused "$T/c4.qcow2" 'backing chain is too deep \(more than 3 backing files\)' \
        max-chain-depth=3
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/c4.qcow2" max-chain-depth=4
    [ "$(nbdinfo --size "$uri")" -eq 1048576 ]
}

@test "bad backing: a missing file and a name of 1000 bytes" {
    skip_if_sanitizers "nbdkit hangs in exit() after a strerror message"
    make_pair
    rm "$T/a.qcow2"
    refused "$T/b.qcow2" 'b.qcow2: backing file .*/a.qcow2: No such file or directory'
    long=$(printf 'x%.0s' $(seq 1000))
    qemu-img rebase -u -b "$long" -F qcow2 "$T/b.qcow2"
    refused "$T/b.qcow2" 'File name too long'
}

@test "bad backing: a name of 2000 bytes" {
    make_pair
    # qemu-img refuses to write it: put a 1000-byte name there and
    # claim 2000 bytes.
    long=$(printf 'x%.0s' $(seq 1000))
    qemu-img rebase -u -b "$long" -F qcow2 "$T/b.qcow2"
    poke "$T/b.qcow2" 'put(16, ">I", 2000)'
    refused "$T/b.qcow2" 'backing_file_size 2000 is too large'
}

@test "bad backing: unsupported formats and json: names" {
    make_pair
    qemu-img rebase -u -b a.qcow2 -F vmdk "$T/b.qcow2"
    refused "$T/b.qcow2" "format 'vmdk', which is not supported"
    qemu-img rebase -u -F raw \
        -b 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/passwd"}}' \
        "$T/b.qcow2"
    refused "$T/b.qcow2" 'json: syntax are not supported'
}

@test "bad backing: a directory" {
    make_pair
    mkdir "$T/dir"
    qemu-img rebase -u -b dir -F raw "$T/b.qcow2"
    refused "$T/b.qcow2" 'backing file .*/dir is a directory'
}

@test "bad backing: a bad header in a backing file stops the top image" {
    make_pair
    poke "$T/a.qcow2" 'put(20, ">I", 30)'
    refused "$T/b.qcow2" 'cluster_bits 30 is out of range'
    refused "$T/b.qcow2" 'b.qcow2: cannot open backing file .*a.qcow2'
}

# ----------------------------------------------------------------------
# Compressed clusters

# A compressed image: guest 0-64K compressed, 1M-1M+64K plain data.
make_compressed ()
{
    local type=$1
    { head -c 64k /usr/bin/qemu-img; head -c 960k /dev/zero; head -c 64k /dev/urandom; } \
        > "$T/src.raw"
    truncate -s 2M "$T/src.raw"
    qemu-img convert -c -O qcow2 -o compression_type=$type "$T/src.raw" "$T/c.qcow2"
    run qemu-img check "$T/c.qcow2"
    assert_success
    assert_output --regexp ' [1-9][0-9.]*% compressed clusters'
}

@test "bad compressed: descriptor pointing past the end of the file" {
    make_compressed zlib
    # Host offset field: the low 70 - 16 bits for 64K clusters.
    poke "$T/c.qcow2" 'e = l2_entry_offset(0); put(e, ">Q", (1 << 62) | (1 << 40))'
    assert_read_fails "$T/c.qcow2" 0 1048576 "$T/src.raw" 'beyond the end of the file'
}

@test "bad compressed: payload cut short by the end of the file" {
    make_compressed zstd
    # Move the cluster's start to 100 bytes before the end of the file.
    poke "$T/c.qcow2" '
import os
end = os.fstat(f.fileno()).st_size
e = l2_entry_offset(0)
put(e, ">Q", (1 << 62) | (0xff << 54) | (end - 100))'
    assert_read_fails "$T/c.qcow2" 0 1048576 "$T/src.raw" 'cannot be decompressed'
}

@test "bad compressed: garbage payloads, zlib and zstd" {
    for type in zlib zstd; do
        make_compressed $type
        poke "$T/c.qcow2" '
e = get(l2_entry_offset(0), ">Q")
host = e & ((1 << (70 - cluster_bits)) - 1)
f.seek(host); f.write(bytes((i * 37 + 11) & 0xff for i in range(600)))'
        assert_read_fails "$T/c.qcow2" 4096 1048576 "$T/src.raw" 'cannot be decompressed'
        cleanup_servers
    done
}

@test "bad compressed: zstd type holding zlib data, and zlib type holding zstd" {
    make_compressed zlib
    # Compression type 1 and incompatible bit 3 (header_length is 112).
    poke "$T/c.qcow2" 'put(104, ">B", 1); put(72, ">Q", get(72, ">Q") | 8)'
    assert_read_fails "$T/c.qcow2" 0 1048576 "$T/src.raw" 'cannot be decompressed'
    cleanup_servers
    make_compressed zstd
    poke "$T/c.qcow2" 'put(104, ">B", 0); put(72, ">Q", get(72, ">Q") & ~8)'
    assert_read_fails "$T/c.qcow2" 0 1048576 "$T/src.raw" 'cannot be decompressed'
}

# ----------------------------------------------------------------------
# Extended L2 entries

@test "bad subclusters: a bitmap on a compressed entry" {
    { head -c 64k /usr/bin/qemu-img; } > "$T/src.raw"
    truncate -s 2M "$T/src.raw"
    qemu-io -f raw -c 'write -P 0x22 1M 64k' "$T/src.raw" >/dev/null
    qemu-img convert -c -O qcow2 -o extended_l2=on "$T/src.raw" "$T/x.qcow2"
    poke "$T/x.qcow2" 'put(l2_entry_offset(0, 16) + 8, ">Q", 1)'
    assert_read_fails "$T/x.qcow2" 0 1048576 "$T/src.raw" 'has a subcluster bitmap'
}

@test "bad subclusters: zero bits on an unallocated entry over a backing file read as zero" {
    # Not an error: QEMU reads such subclusters as zeroes.
    qemu-img create -q -f qcow2 "$T/base.qcow2" 1M
    qemu-io -f qcow2 -c 'write -P 0x33 0 1M' "$T/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -o extended_l2=on -b base.qcow2 -F qcow2 "$T/x.qcow2" 1M
    qemu-io -f qcow2 -c 'write -P 0x44 64k 2k' "$T/x.qcow2" >/dev/null
    poke "$T/x.qcow2" 'put(l2_entry_offset(0, 16) + 8, ">Q", 0x0000000500000000)'
    qemu-img convert -O raw "$T/x.qcow2" "$T/ref.raw"
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/x.qcow2"
    copy_export "$uri" "$T/ours.raw"
    cmp "$T/ours.raw" "$T/ref.raw"
}

# ----------------------------------------------------------------------
# Snapshots

make_snapshots ()
{
    qemu-img create -q -f qcow2 "$T/s.qcow2" 1M
    qemu-io -f qcow2 -c 'write -P 0x11 0 64k' "$T/s.qcow2" >/dev/null
    qemu-img snapshot -c one "$T/s.qcow2"
    qemu-img snapshot -c two "$T/s.qcow2"
}

@test "bad snapshots: not found, and an image without snapshots" {
    make_snapshots
    refused "$T/s.qcow2" 'snapshot three not found' snapshot=three
    qemu-img create -q -f qcow2 "$T/n.qcow2" 1M
    refused "$T/n.qcow2" 'snapshot one not found: the image has no snapshots' snapshot=one
}

@test "bad snapshots: table running past the end of the file" {
    make_snapshots
    # The last entry's name claims 60000 bytes.
    poke "$T/s.qcow2" 'put(snapshot_offset(1) + 14, ">H", 60000)'
    refused "$T/s.qcow2" 'snapshot table entry 1 .*runs past the end of the file'
    # More entries than the table holds.
    make_snapshots
    poke "$T/s.qcow2" 'put(60, ">I", 200)'
    refused "$T/s.qcow2" 'snapshot table entry [0-9]+ .*(runs past|lies beyond) the end of the file|snapshot table .*beyond the end of the file'
}

@test "bad snapshots: too much extra data" {
    make_snapshots
    poke "$T/s.qcow2" 'put(snapshot_offset(0) + 36, ">I", 1025)'
    refused "$T/s.qcow2" 'snapshot table entry 0 has 1025 bytes of extra data'
}

@test "bad snapshots: L1 tables past the end of the file, unaligned, too small" {
    make_snapshots
    poke "$T/s.qcow2" 'put(snapshot_offset(1), ">Q", 1 << 40)'
    refused "$T/s.qcow2" 'snapshot 1 L1 table .*lies beyond the end of the file'
    make_snapshots
    poke "$T/s.qcow2" 'put(snapshot_offset(0), ">Q", get(snapshot_offset(0), ">Q") + 512)'
    refused "$T/s.qcow2" 'snapshot 0 L1 table offset 0x[0-9a-f]+ is not a valid cluster offset'
    make_snapshots
    poke "$T/s.qcow2" 'put(snapshot_offset(0) + 8, ">I", 0)'
    refused "$T/s.qcow2" 'snapshot 0 has an L1 table of 0 entries, too small'
    make_snapshots
    poke "$T/s.qcow2" 'put(snapshot_offset(0) + 8, ">I", 1 << 30)'
    refused "$T/s.qcow2" 'snapshot 0 has an L1 table of 1073741824 entries, more than the limit'
}

# ----------------------------------------------------------------------
# External data files

@test "bad data file: data-file= without one, the bit without a name, raw bit alone" {
    qemu-img create -q -f qcow2 "$T/plain.qcow2" 1M
    refused "$T/plain.qcow2" 'data-file was given, but the image does not use' \
        data-file="$T/plain.qcow2"
    cp "$T/plain.qcow2" "$T/nobit.qcow2"
    poke "$T/nobit.qcow2" 'put(88, ">Q", 2)'
    refused "$T/nobit.qcow2" 'raw external data bit is set, but the image has no external data file'
    cd "$T"
    qemu-img create -q -f qcow2 -o data_file=d.data "$T/d.qcow2" 1M
    # Rename the extension: the bit stays, the name is gone.
    poke "$T/d.qcow2" '
c0 = (f.seek(0), f.read(65536))[1]
i = c0.find(struct.pack(">I", 0x44415441))
assert i >= 104
put(i, ">I", 0x0BADF00D)'
    refused "$T/d.qcow2" 'does not record its name: give it with data-file='
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/d.qcow2" data-file="$T/d.data"
    [ "$(nbdinfo --size "$uri")" -eq 1048576 ]
}

@test "bad data file: missing" {
    skip_if_sanitizers "nbdkit hangs in exit() after a strerror message"
    cd "$T"
    qemu-img create -q -f qcow2 -o data_file=gone.data "$T/d.qcow2" 1M
    rm gone.data
    refused "$T/d.qcow2" 'cannot open external data file gone.data: No such file'
}

# ----------------------------------------------------------------------
# qcow version 1

make_qcow1 ()
{
    head -c 256k /usr/bin/qemu-img > "$T/src.raw"
    truncate -s 1M "$T/src.raw"
    # qemu-img 7.2 writes a good compressed qcow v1 image but exits 1
    # without a message: judge the image by its contents.
    run qemu-img convert -c -O qcow "$T/src.raw" "$T/q.qcow"
    if test "$status" -gt 1; then fail "qemu-img convert: exit $status"; fi
    qemu-img compare -f raw -F qcow "$T/src.raw" "$T/q.qcow"
}

@test "bad qcow v1: header fields" {
    make_qcow1
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(32, ">B", 17)'
    refused "$T/b.qcow" 'invalid qcow version 1 header: cluster size'
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(33, ">B", 14)'
    refused "$T/b.qcow" 'invalid qcow version 1 header: L2 table size'
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(40, ">Q", 1 << 50)'
    refused "$T/b.qcow" 'L1 table lies beyond the end of the file'
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(24, ">Q", (1 << 64) - 1)'
    refused "$T/b.qcow" 'size is too large'
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(36, ">I", 1)'
    refused "$T/b.qcow" 'the image is encrypted \(AES\): a passphrase is needed'
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(36, ">I", 2)'
    refused "$T/b.qcow" 'invalid qcow version 1 header: crypt_method is unknown'
    cp "$T/q.qcow" "$T/b.qcow"; poke "$T/b.qcow" 'put(8, ">Q", 1 << 40); put(16, ">I", 10)'
    refused "$T/b.qcow" 'backing file name lies beyond the end of the file'
    # Options that make no sense for the format.
    refused "$T/q.qcow" 'the image has no snapshots' snapshot=1
    refused "$T/q.qcow" 'does not use an external data file' data-file="$T/src.raw"
}

@test "bad qcow v1: L2 table and compressed cluster past the end of the file" {
    make_qcow1
    # qcow v1: L1 at 48, 4K clusters, 512 L2 entries (2 MiB per table).
    cp "$T/q.qcow" "$T/b.qcow"
    poke "$T/b.qcow" 'l2 = get(get(40, ">Q"), ">Q"); put(l2, ">Q", (1 << 63) | (100 << 51) | (1 << 40))'
    assert_read_fails "$T/b.qcow" 0 8192 "$T/src.raw" 'compressed cluster .*beyond the end of the file'
    cleanup_servers
    cp "$T/q.qcow" "$T/b.qcow"
    poke "$T/b.qcow" 'put(get(40, ">Q"), ">Q", 1 << 40)'
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/b.qcow"
    run nbd_pread "$uri" 0 4096
    assert_failure
    assert_output --partial "Input/output error"
    grep -q 'L2 table offset .* is beyond the end of the file' "$nbdkit_log"
    server_alive "$nbdkit_pid"
}
