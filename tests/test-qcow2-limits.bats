#!/usr/bin/env bats
# Every cap the qcow2 engine, the plugin and the compress filter enforce
# (the LIMITS sections of their manuals), each at its boundary: the
# largest value is served, one more is refused with a message naming the
# field.  Where QEMU has the same cap, qemu-img agrees on both sides.
# Images are made by qemu-img; tests/qcow2-limits.py pushes one field.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdinfo
    T=$BATS_TEST_TMPDIR
    LIMITS=$BATS_TEST_DIRNAME/qcow2-limits.py
}

teardown ()
{
    local r=0
    cleanup_servers || r=$?
    if [ -n "${SHM:-}" ]; then rm -rf "$SHM"; fi
    return "$r"
}

push ()
{
    /usr/bin/python3 "$LIMITS" "$@"
}

# served IMG [PARAMS...]: nbdkit opens it and serves its 1M.
served ()
{
    local img=$1; shift
    start_nbdkit -r "$QCOW2_PLUGIN" file="$img" "$@"
    assert_equal "$(nbdinfo --size "$uri")" 1048576
}

# qemu_opens IMG / qemu_refuses IMG MESSAGE: the oracle's verdict.
qemu_opens ()
{
    run qemu-img snapshot -l -U "$1"
    assert_success
}

qemu_refuses ()
{
    run qemu-img snapshot -l -U "$1"
    assert_failure
    assert_output --partial "$2"
}

@test "limits: L1 table of 32 MiB (4194304 entries); one entry more is refused, as by QEMU" {
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    push l1 "$T/a.qcow2" 4194304
    qemu_opens "$T/a.qcow2"
    served "$T/a.qcow2"
    push l1 "$T/a.qcow2" 4194305
    qemu_refuses "$T/a.qcow2" 'Active L1 table too large'
    assert_startup_refused 'l1_size 4194305 is too large' "$QCOW2_PLUGIN" file="$T/a.qcow2"
}

@test "limits: a snapshot's L1 table of 32 MiB; one entry more is refused, as by QEMU" {
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    cp "$T/a.qcow2" "$T/b.qcow2"
    push snapshots "$T/a.qcow2" 1 1 16
    push snapshot-l1 "$T/a.qcow2" 4194304
    # QEMU checks the size when it loads the snapshot.
    run qemu-img convert -U -l snapshot.id=00000001 -O raw "$T/a.qcow2" "$T/out.raw"
    assert_success
    served "$T/a.qcow2" snapshot=00000001
    push snapshots "$T/b.qcow2" 1 1 16
    push snapshot-l1 "$T/b.qcow2" 4194305
    run qemu-img convert -U -l snapshot.id=00000001 -O raw "$T/b.qcow2" "$T/out.raw"
    assert_failure
    assert_output --partial 'Snapshot L1 table too large'
    assert_startup_refused 'snapshot 0 has an L1 table of 4194305 entries, more than the limit' \
        "$QCOW2_PLUGIN" file="$T/b.qcow2"
}

@test "limits: a qcow v1 L1 table of 32 MiB (8 TiB with 4K clusters); one entry more is refused" {
    qemu-img create -q -f qcow "$T/a.qcow" 8T
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/a.qcow"
    assert_equal "$(nbdinfo --size "$uri")" 8796093022208
    qemu-img create -q -f qcow "$T/b.qcow" $((8 * 2**40 + 2**21))
    assert_startup_refused 'invalid qcow version 1 header: L1 table is too large' \
        "$QCOW2_PLUGIN" file="$T/b.qcow"
}

@test "limits: refcount table of 8 MiB (128 clusters of 64K); one cluster more is refused, as by QEMU" {
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    cp "$T/a.qcow2" "$T/b.qcow2"
    push reftable "$T/a.qcow2" 128
    qemu_opens "$T/a.qcow2"
    served "$T/a.qcow2"
    # Writable, so the refcount table is loaded and used.
    start_nbdkit "$QCOW2_PLUGIN" file="$T/a.qcow2"
    run qemu-io -f raw -c 'write -P 0x42 0 64k' "$uri"
    assert_success
    stop_server "$nbdkit_pid"
    run qemu-img check "$T/a.qcow2"
    assert_success
    push reftable "$T/b.qcow2" 129
    qemu_refuses "$T/b.qcow2" 'Reference count table too large'
    assert_startup_refused 'refcount table is too large \(129 clusters\)' \
        "$QCOW2_PLUGIN" file="$T/b.qcow2"
}

# snapshot_boundary "OK-ARGS" ID "BAD-ARGS" QEMU-MESSAGE OUR-MESSAGE: a
# snapshot table pushed with OK-ARGS is read by both (snapshot ID, the
# last, is served); with BAD-ARGS both refuse it.
snapshot_boundary ()
{
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    cp "$T/a.qcow2" "$T/b.qcow2"
    # shellcheck disable=SC2086
    push snapshots "$T/a.qcow2" $1
    qemu_opens "$T/a.qcow2"
    served "$T/a.qcow2" snapshot="$2"
    # shellcheck disable=SC2086
    push snapshots "$T/b.qcow2" $3
    qemu_refuses "$T/b.qcow2" "$4"
    assert_startup_refused "$5" "$QCOW2_PLUGIN" file="$T/b.qcow2"
}

@test "limits: 65536 snapshots; 65537 are refused, as by QEMU" {
    snapshot_boundary "65536 1 16" 00065536 "65537 1 16" \
        'Snapshot table too large' 'nb_snapshots 65537 is too large \(at most 65536\)'
}

@test "limits: a snapshot table of 64 MiB; one byte more is refused, as by QEMU" {
    # 1024 entries of 40 + 16 + 8 + 65472 = 65536 bytes.
    snapshot_boundary "1024 65472 16" 00001024 "1024 65472 16 65473" \
        'overhanging snapshots' \
        'snapshot table entry 1023 ends past the table limit \(67108864 bytes\)'
}

@test "limits: 1024 bytes of snapshot extra data; 1025 are refused, as by QEMU" {
    snapshot_boundary "1 1 1024" 00000001 "1 1 1025" 'extra metadata' \
        'snapshot table entry 0 has 1025 bytes of extra data \(at most 1024\)'
}

@test "limits: a backing file name of 1023 bytes; 1024 are refused" {
    qemu-img create -q -f raw "$T/b.raw" 1M
    qemu-io -f raw -c 'write -P 0x61 0 1M' "$T/b.raw" >/dev/null
    # ./././.../b.raw: 509 times "./" and 5 bytes.
    name=$(printf './%.0s' $(seq 509))b.raw
    assert_equal "${#name}" 1023
    qemu-img create -q -f qcow2 -b "$name" -F raw "$T/a.qcow2" 1M
    (cd "$T" && qemu_opens a.qcow2)
    served "$T/a.qcow2"
    assert_equal "$(nbdcopy "$uri" - | md5sum)" "$(md5sum < "$T/b.raw")"
    # qemu-img will not write 1024 bytes: claim one more (a NUL).
    /usr/bin/python3 -c 'import struct, sys
f = open(sys.argv[1], "r+b"); f.seek(16); f.write(struct.pack(">I", 1024))' "$T/a.qcow2"
    assert_startup_refused 'backing_file_size 1024 is too large \(at most 1023\)' \
        "$QCOW2_PLUGIN" file="$T/a.qcow2"
}

@test "limits: 16 backing files by default; 17 need max-chain-depth=17" {
    qemu-img create -q -f qcow2 "$T/c0.qcow2" 1M
    for i in $(seq 1 17); do
        qemu-img create -q -f qcow2 -b c$((i - 1)).qcow2 -F qcow2 "$T/c$i.qcow2" 1M
    done
    served "$T/c16.qcow2"
    assert_startup_refused 'backing chain is too deep \(more than 16 backing files\)' \
        "$QCOW2_PLUGIN" file="$T/c17.qcow2"
    served "$T/c17.qcow2" max-chain-depth=17
    assert_startup_refused 'max-chain-depth must be at least 1' \
        "$QCOW2_PLUGIN" file="$T/c0.qcow2" max-chain-depth=0
}

@test "limits: l2-cache-size of at least 64K" {
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    served "$T/a.qcow2" l2-cache-size=64K
    served "$T/a.qcow2" l2-cache-size=1T
    assert_startup_refused 'l2-cache-size must be at least 64K' \
        "$QCOW2_PLUGIN" file="$T/a.qcow2" l2-cache-size=65535
}

# A dirty image (lazy refcounts) whose first K L1 entries all name one
# L2 table of 2^18 entries (2M clusters): rebuilding its refcounts walks
# K * 2^18 entries.
shared_l2_image ()
{
    # 8193 L1 entries of 512 GiB each.
    qemu-img create -q -f qcow2 -o cluster_size=2M,lazy_refcounts=on,refcount_bits=64 \
        "$T/r.qcow2" 4504108379947008
    qemu-io -f qcow2 -c 'write -P 1 0 4k' "$T/r.qcow2" >/dev/null
    push share-l2 "$T/r.qcow2" "$1"
}

@test "limits: repairing a dirty image walks at most 2^31 table entries" {
    shared_l2_image 8192
    start_nbdkit "$QCOW2_PLUGIN" file="$T/r.qcow2"
    run qemu-io -f raw -c 'read -P 1 0 4k' "$uri"
    assert_success
    refute_output --partial 'Pattern verification failed'

    shared_l2_image 8193
    start_nbdkit "$QCOW2_PLUGIN" file="$T/r.qcow2"
    run qemu-io -f raw -c 'read 0 4k' "$uri"
    assert_failure
    run cat "$nbdkit_log"
    assert_output --partial 'rebuilding its refcounts would walk more than 2147483648 table entries'
    # Nothing was written: the dirty bit is still set.
    run qemu-img info -U "$T/r.qcow2"
    assert_output --partial 'corrupt: false'
    assert_equal "$(/usr/bin/python3 -c 'import struct, sys
f = open(sys.argv[1], "rb"); f.seek(72); print(struct.unpack(">Q", f.read(8))[0] & 1)' "$T/r.qcow2")" 1
}

@test "limits: compress filter: 32M maximum request, minimum block size at most 64K" {
    requires_module "$COMPRESS_FILTER"
    qemu-img create -q -f qcow2 -o cluster_size=2M "$T/a.qcow2" 64M
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$T/a.qcow2"
    run nbdinfo --json "$uri"
    assert_success
    assert_output --regexp '"block_size_minimum": 65536'
    assert_output --regexp '"block_size_preferred": 2097152'
    assert_output --regexp '"block_size_maximum": 33554432'
}

@test "limits: compression levels 1-9 for zlib, 1-22 for zstd" {
    requires_module "$COMPRESS_FILTER"
    qemu-img create -q -f qcow2 "$T/z.qcow2" 1M
    qemu-img create -q -f qcow2 -o compression_type=zstd "$T/s.qcow2" 1M
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$T/z.qcow2" compression-level=9
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$T/s.qcow2" compression-level=22
    assert_startup_refused 'compression-level must be at least 1' \
        --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$T/z.qcow2" compression-level=0
    assert_startup_refused 'level' \
        --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$T/z.qcow2" compression-level=10
    assert_startup_refused 'level' \
        --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$T/s.qcow2" compression-level=23
}

@test "limits: compress filter: compressed clusters only below 2^49 bytes with 2M clusters" {
    requires_module "$COMPRESS_FILTER"
    # A sparse file of 512 TiB: tmpfs can hold one, ext4 cannot.
    if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" != tmpfs ]; then
        skip "no tmpfs at /dev/shm"
    fi
    SHM=$(mktemp -d /dev/shm/qcow2-limits.XXXXXX)
    qemu-img create -q -f qcow2 -o cluster_size=2M,refcount_bits=1 "$SHM/c.qcow2" 64M
    push fill-below-2-49 "$SHM/c.qcow2"
    head -c 48M /dev/urandom | base64 | head -c 64M > "$SHM/text"
    head -c 8M "$SHM/text" > "$SHM/text8"
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$SHM/c.qcow2"
    # One L2 table and the first clusters fit in the last 8 free
    # clusters below 2^49, and read back in QEMU.
    run nbdcopy -- "$SHM/text8" "$uri"
    assert_success
    stop_server "$nbdkit_pid"
    qemu-img convert -U -O raw "$SHM/c.qcow2" "$SHM/out.raw"
    cmp -n 8M "$SHM/out.raw" "$SHM/text"
    # More would need a cluster at 2^49.  One request in flight: when
    # nbdcopy hangs up on the first error while nbdkit 1.32 still has
    # replies to send, nbdkit aborts (connections.c: raw_send_socket:
    # Assertion `sock >= 0' failed), which is not what is tested here.
    start_nbdkit --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" file="$SHM/c.qcow2"
    run nbdcopy --connections=1 --requests=1 -- "$SHM/text" "$uri"
    assert_failure
    run cat "$nbdkit_log"
    assert_output --partial 'host offset 0x2000000000000 is too large for a compressed cluster descriptor'
}
