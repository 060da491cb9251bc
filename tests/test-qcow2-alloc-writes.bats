#!/usr/bin/env bats
# Allocating writes (issue 10): a write into a new cluster writes the
# guest's bytes, and the rest of the cluster is made to read as zeroes
# without writing them (fallocate), where the guest saw zeroes there.
#   - host bytes written (the server's wchar, a counter) stay within
#     1.1 x the guest bytes of random 4K writes into a fresh image;
#   - a new cluster placed in freed space that still holds old data
#     (here its punch failed) reads zeroes where the guest did not write;
#   - the file always covers every allocated cluster;
#   - QEMU finds every result clean and equal to a raw reference, for
#     64K and 2M clusters, extended L2, a backing overlay, an external
#     data file and encryption (where zeroes must be written encrypted).

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

PASS=alloc-secret-pass
SECRET="secret,id=sec0,data=$PASS"

setup ()
{
    requires qemu-img qemu-io nbdsh
    T=$BATS_TEST_TMPDIR
    img=$T/img.qcow2
    ref=$T/ref.raw
}

# wchar PID: bytes the process has passed to write system calls.
wchar ()
{
    awk '$1 == "wchar:" { print $2 }' "/proc/$1/io"
}

# workload COUNT SEED [--unaligned N] -- PLUGIN-ARGS...: serve $img,
# run tests/alloc-workload.py against it (mirrored on $ref), stop the
# server.  Sets guest (bytes written) and host (the server's wchar
# during the run, the final flush included).
workload ()
{
    local count=$1 seed=$2 extra=() w0 w1
    shift 2
    while test "$1" != --; do extra+=("$1"); shift; done
    shift
    start_nbdkit "$QCOW2_PLUGIN" file="$img" "$@"
    w0=$(wchar "$nbdkit_pid")
    guest=$(/usr/bin/python3 "$BATS_TEST_DIRNAME/alloc-workload.py" \
        "$uri" "$ref" "$count" "$seed" "${extra[@]}")
    w1=$(wchar "$nbdkit_pid")
    host=$((w1 - w0))
    stop_server "$nbdkit_pid"
    echo "guest bytes $guest, host bytes written $host"
}

# assert_ratio_at_most LIMIT: host <= LIMIT x guest.
assert_ratio_at_most ()
{
    run awk -v h="$host" -v g="$guest" -v l="$1" \
        'BEGIN { printf "%.3f\n", h / g; exit !(h <= l * g) }'
    echo "host / guest = $output (limit $1)"
    assert_success
}

# assert_file_covers_clusters IMAGE: the file reaches the end of every
# data cluster of its own (not of a backing file).  With extended L2
# entries only the written subclusters need to: the rest of a cluster
# is unallocated and never read (the tests that use them prove that
# QEMU and our reader agree).
assert_file_covers_clusters ()
{
    local cs end
    cs=$(cluster_size_of "$1")
    end=$(qemu-img map --output=json "$1" | /usr/bin/python3 -c '
import json, sys
cs = int(sys.argv[1])
ends = [(m["offset"] // cs + 1) * cs for m in json.load(sys.stdin)
        if m.get("offset") is not None and m["data"] and m["depth"] == 0]
print(max(ends, default=0))' "$cs")
    test "$(stat -c %s "$1")" -ge "$end" ||
        fail "the last data cluster ends at $end, the file at $(stat -c %s "$1")"
}

# qemu_agrees [covers]: $img is clean and equal to $ref; with
# "covers", the file also covers its clusters.
qemu_agrees ()
{
    check_clean "$img"
    run qemu-img compare -f qcow2 -F raw "$img" "$ref"
    echo "$output"
    assert_success
    if test "${1:-}" = covers; then
        assert_file_covers_clusters "$img"
    fi
}

fresh ()
{
    local size=$1; shift
    qemu-img create -q -f qcow2 "$@" "$img" "$size"
    rm -f "$ref"
    truncate -s "$size" "$ref"
}

@test "alloc writes: 4K random writes into a fresh image write at most 1.1 x the guest bytes" {
    fresh 1G -o cluster_size=64k
    workload 2000 1 --
    assert_ratio_at_most 1.1
    qemu_agrees covers
}

@test "alloc writes: L2 tables that all fit the cache are written once, at the flush, however many are dirty" {
    # 32 L2 tables (16G of 64K clusters), 32 slots of cache: every
    # table is dirty long before the end.  Written back for room at
    # half the cache, they cost 12 x the guest bytes; kept until the
    # flush, 32 x 64K over 8000 x 4K.
    fresh 16G -o cluster_size=64k
    workload 8000 3 -- l2-cache-size=2M
    assert_ratio_at_most 1.2
    qemu_agrees
}

@test "alloc writes: 1K random writes with extended L2 entries (2K subclusters) write at most 1.1 x" {
    fresh 1G -o cluster_size=64k,extended_l2=on
    workload 8000 2 --block 1024 --
    assert_ratio_at_most 1.1
    qemu_agrees
    check_image "$img"
}

@test "alloc writes: the same into an external data file" {
    fresh 1G -o cluster_size=64k,data_file="$T/data.raw"
    workload 2000 3 --
    assert_ratio_at_most 1.1
    qemu_agrees
}

@test "alloc writes: 2M clusters, random and unaligned writes" {
    fresh 1G -o cluster_size=2M
    workload 600 4 --unaligned 200 --
    qemu_agrees covers
}

@test "alloc writes: 64K clusters, unaligned writes across cluster boundaries" {
    fresh 256M -o cluster_size=64k
    workload 300 5 --unaligned 400 --
    qemu_agrees covers
}

@test "alloc writes: extended L2, unaligned writes" {
    fresh 256M -o cluster_size=64k,extended_l2=on
    workload 300 6 --unaligned 400 --
    qemu_agrees
    # The file may end inside the last cluster, in unallocated
    # subclusters: our reader agrees with QEMU.
    check_image "$img"
}

@test "alloc writes: external data file with data_file_raw, unaligned" {
    fresh 256M -o cluster_size=64k,data_file="$T/data.raw",data_file_raw=on
    workload 300 7 --unaligned 400 --
    qemu_agrees
    # The raw data file is the guest view itself.
    run cmp "$T/data.raw" "$ref"
    assert_success
}

@test "alloc writes: a fresh overlay copies the backing file's data into new clusters" {
    local base=$T/base.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=64k "$base" 256M
    qemu-io -f qcow2 -c "write -P 0x11 0 96M" -c "write -P 0x22 160M 32M" \
        -c "write -z 16M 1M" "$base" >/dev/null
    qemu-img create -q -f qcow2 -o cluster_size=64k -b "$base" -F qcow2 "$img"
    qemu-img convert -f qcow2 -O raw "$img" "$ref"
    workload 400 8 --unaligned 200 --
    qemu_agrees covers
}

@test "alloc writes: an encrypted image writes its zeroes encrypted" {
    local opts=driver=qcow2,file.filename=$img,encrypt.key-secret=sec0
    echo -n "$PASS" > "$T/pass"
    qemu_img_create -q -f qcow2 --object "$SECRET" \
        -o cluster_size=64k,encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 \
        "$img" 128M
    rm -f "$ref"
    truncate -s 128M "$ref"
    workload 300 9 --unaligned 100 -- passphrase=+"$T/pass"
    run qemu-img check --object "$SECRET" --image-opts "$opts"
    echo "$output"
    assert_success
    run qemu-img compare --object "$SECRET" --image-opts "$opts" \
        "driver=raw,file.filename=$ref"
    echo "$output"
    assert_success
}

# host_of IMAGE GUEST-OFFSET: where qemu-img map puts that guest byte.
host_of ()
{
    qemu-img map --output=json "$1" | /usr/bin/python3 -c '
import json, sys
g = int(sys.argv[1])
for m in json.load(sys.stdin):
    if m["start"] <= g < m["start"] + m["length"] and m["data"]:
        print(m["offset"] + g - m["start"])' "$2"
}

@test "alloc writes: a new cluster in freed space that was not punched reads zeroes where unwritten" {
    local arm=$T/arm old new
    fresh 64M -o cluster_size=64k
    start_nbdkit "$QCOW2_PLUGIN" file="$img"
    nbdsh -u "$uri" -c 'h.pwrite(b"\xaa" * 65536, 0); h.flush()'
    stop_server "$nbdkit_pid"
    old=$(host_of "$img" 0)
    test -n "$old" || fail "guest offset 0 is not allocated"

    # The punch of the freed cluster fails: it keeps its 0xaa bytes.
    with_faults punch=1 "$img" start_nbdkit "$QCOW2_PLUGIN" file="$img"
    nbdsh -u "$uri" -c '
h.trim(65536, 0)
h.flush()
h.pwrite(b"\x55" * 4096, 1024 * 1024 + 8192)
h.flush()'
    stop_server "$nbdkit_pid"
    cat "$nbdkit_log"
    assert_equal "$(faults_injected "$nbdkit_log")" 1
    new=$(host_of "$img" $((1024 * 1024)))
    echo "guest 1M at host $new"
    assert_equal "$new" "$old"

    dd if=/dev/zero of="$ref" bs=64k count=1 conv=notrunc status=none
    /usr/bin/python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"\x55" * 4096, 1024 * 1024 + 8192)' "$ref"
    qemu_agrees covers
}

@test "alloc writes: a 4K write into the last cluster of the file still makes the file cover it" {
    fresh 64M -o cluster_size=64k
    start_nbdkit "$QCOW2_PLUGIN" file="$img"
    nbdsh -u "$uri" -c 'h.pwrite(b"\x77" * 4096, 32 * 1024 * 1024); h.flush()'
    stop_server "$nbdkit_pid"
    /usr/bin/python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"\x77" * 4096, 32 * 1024 * 1024)' "$ref"
    qemu_agrees covers
    check_image "$img"
}
