#!/usr/bin/env bats
# The write path against QEMU as the oracle: a seeded random workload
# (tests/write-workload.py: pwrite of random sizes and alignments, zero
# with and without MAY_TRIM, trim, flush, two connections, many
# requests in flight) goes to the image through the server and to a raw
# reference file.  Afterwards `qemu-img check` must find nothing and
# `qemu-img compare` must find the guest view identical to the
# reference, for each kind of image the issue lists.
#
# WRITE_SERVER=qemu-nbd runs every case against qemu-nbd instead (the
# proof that the harness is right); WRITE_OPS=N changes the number of
# requests per case (default 300); WRITE_SEED shifts the seeds;
# WRITE_ARGS adds driver options (e.g. "--connections 4 --inflight 32").

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/write-functions.sh"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo
    test -x /usr/bin/python3 || skip "/usr/bin/python3 is not installed"
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    img=$BATS_TEST_TMPDIR/test.qcow2
    ref=$BATS_TEST_TMPDIR/ref.raw
}

# prefill IMG SIZE: content from QEMU before the workload, so that the
# workload meets every kind of L2 entry: data (COPIED), zero clusters
# with and without a host cluster, discarded clusters, holes.
prefill ()
{
    local img=$1 size=$2 m=$((1024 * 1024))
    qemu-io -f qcow2 \
        -c "write -P 0x5a 0 $((3 * m))" \
        -c "write -z $((1 * m)) $((m / 2))" \
        -c "write -P 0x33 $((5 * m + 4096)) $((2 * m))" \
        -c "write -z -u $((6 * m)) $((m / 2))" \
        -c "discard $((5 * m)) 65536" \
        -c "write -P 0xc3 $((size - 3 * m)) $((2 * m + 12345))" \
        -c "write -z $((size / 2)) $((2 * m))" \
        "$img" >/dev/null
}

# run_workload IMG CLUSTER SEED [DRIVER-ARGS...]: the workload over the
# server under test, then the checks.  REF must hold the guest view of
# IMG before the run.  The server's own args come from server_args.
run_workload ()
{
    local img=$1 c=$2 seed=$3; shift 3
    local version_before=${expect_version:-}
    test -e "$img" && version_before=$(image_version "$img")

    start_write_server "$img" "${server_args[@]}" || return 1
    echo "workload seed $seed" >&2
    workload run --uri "$uri" --reference "$ref" --seed "$seed" \
        --ops "${WRITE_OPS:-300}" --cluster-size "$c" "$@" ${WRITE_ARGS:-} ||
        return 1
    stop_write_server || return 1

    check_clean "$img" || return 1
    qemu-img compare -f qcow2 -F raw "$img" "$ref" || return 1
    assert_not_dirty "$img" || return 1
    # The writer must not have upgraded (or downgraded) the image.
    assert_equal "$(image_version "$img")" "$version_before"
}

server_args=()

# case_plain SIZE CREATE-OPTIONS SEED: a new image, prefilled by QEMU.
case_plain ()
{
    local size=$1 opts=$2 seed c
    seed=$(write_seed "$3")
    qemu-img create -q -f qcow2 -o "$opts" "$img" "$size"
    c=$(cluster_size_of "$img")
    prefill "$img" "$(numfmt --from=iec "$size")"
    qemu-img check -q "$img"
    guest_view "$img" "$ref"
    run_workload "$img" "$c" "$seed"
}

@test "write matrix: v3, 64 KiB clusters" {
    case_plain 64M compat=1.1 1
}

@test "write matrix: v2 (compat=0.10), 64 KiB clusters" {
    case_plain 64M compat=0.10 2
}

@test "write matrix: v3, 512 B clusters" {
    case_plain 32M compat=1.1,cluster_size=512 3
}

@test "write matrix: v2, 512 B clusters" {
    case_plain 32M compat=0.10,cluster_size=512 4
}

@test "write matrix: v3, 2 MiB clusters" {
    case_plain 64M compat=1.1,cluster_size=2M 5
}

@test "write matrix: v2, 2 MiB clusters" {
    case_plain 64M compat=0.10,cluster_size=2M 6
}

@test "write matrix: refcount_bits=1" {
    case_plain 64M refcount_bits=1 7
}

@test "write matrix: refcount_bits=64, 512 B clusters (refcount table grows)" {
    # One refcount block covers 64 clusters (32 KiB of file) and the
    # first refcount table cluster 64 blocks: the table must grow.
    case_plain 32M refcount_bits=64,cluster_size=512 8
}

@test "write matrix: refcount_bits=64, 64 KiB clusters" {
    case_plain 64M refcount_bits=64 9
}

@test "write matrix: refcount_bits=2, 4 KiB clusters" {
    case_plain 48M refcount_bits=2,cluster_size=4096 10
}

@test "write matrix: extended L2, 64 KiB clusters" {
    case_plain 64M extended_l2=on 11
}

@test "write matrix: extended L2, 32 KiB clusters, 1 KiB subclusters" {
    case_plain 48M extended_l2=on,cluster_size=32768 12
}

@test "write matrix: extended L2, 2 MiB clusters" {
    case_plain 64M extended_l2=on,cluster_size=2M 13
}

@test "write matrix: lazy refcounts" {
    case_plain 64M lazy_refcounts=on 14
    # a clean close clears the dirty bit (checked by run_workload) and
    # leaves the refcounts exact (check_clean)
}

@test "write matrix: preallocation=metadata" {
    case_plain 64M preallocation=metadata 15
}

@test "write matrix: preallocation=falloc" {
    case_plain 64M preallocation=falloc 16
}

@test "write matrix: preallocation=metadata, v2, extended L2 off, 4 KiB clusters" {
    case_plain 32M preallocation=metadata,compat=0.10,cluster_size=4096 17
}

@test "write matrix: 4 connections, 64 requests in flight, small requests" {
    # many allocations in the same L2 tables and refcount blocks at once
    local seed
    seed=$(write_seed 18)
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$img" 32M
    guest_view "$img" "$ref"
    run_workload "$img" 4096 "$seed" --connections 4 --inflight 64 \
        --max-size 20000 --ops 2000
}

# case_backing COMPAT EXTRA-OPTS SEED: a prefilled base, an overlay with
# some data of its own; the workload writes to the overlay.
case_backing ()
{
    local compat=$1 opts=$2 seed c size=48M
    local base=$BATS_TEST_TMPDIR/base.qcow2 base_raw=$BATS_TEST_TMPDIR/base.raw
    seed=$(write_seed "$3")
    qemu-img create -q -f qcow2 -o compat="$compat" "$base" "$size"
    prefill "$base" $((48 * 1024 * 1024))
    # the overlay is larger than the base: past its end reads zero
    qemu-img create -q -f qcow2 -b "$base" -F qcow2 \
        -o compat="$compat""${opts:+,$opts}" "$img" 56M
    qemu-io -f qcow2 \
        -c "write -P 0x77 $((2 * 1024 * 1024 + 512)) 100000" \
        -c "write -z 20M 1M" \
        "$img" >/dev/null
    c=$(cluster_size_of "$img")
    guest_view "$base" "$base_raw"
    guest_view "$img" "$ref"
    local base_sum
    base_sum=$(md5sum < "$base")

    run_workload "$img" "$c" "$seed" --backing "$base_raw" || return 1

    # the base is never written
    assert_equal "$(md5sum < "$base")" "$base_sum" || return 1
    qemu-img check -q "$base"
}

@test "write matrix: backing file, v3" {
    case_backing 1.1 "" 20
}

@test "write matrix: backing file, v2" {
    case_backing 0.10 "" 21
}

@test "write matrix: backing file, extended L2 (partial subclusters from below)" {
    case_backing 1.1 extended_l2=on 22
}

@test "write matrix: backing file, 512 B clusters" {
    case_backing 1.1 cluster_size=512 23
}

# case_snapshots COMPAT SEED: two internal snapshots share clusters with
# the active layer; every write to them must copy.  Each snapshot must
# read exactly as before.
case_snapshots ()
{
    local compat=$1 seed size=64M s
    seed=$(write_seed "$2")
    qemu-img create -q -f qcow2 -o compat="$compat" "$img" "$size"
    prefill "$img" $((64 * 1024 * 1024))
    qemu-img snapshot -c first "$img"
    qemu-io -f qcow2 -c "write -P 0x81 1M 5M" -c "write -z 30M 3M" \
        -c "discard 40M 1M" "$img" >/dev/null
    qemu-img snapshot -c second "$img"
    qemu-io -f qcow2 -c "write -P 0x82 4M 1M" "$img" >/dev/null
    for s in first second; do
        qemu-img convert -f qcow2 -l snapshot.name=$s -O raw "$img" \
            "$BATS_TEST_TMPDIR/$s.before"
    done
    qemu-img check -q "$img"
    guest_view "$img" "$ref"

    run_workload "$img" 65536 "$seed" || return 1

    qemu-img snapshot -l "$img" > "$BATS_TEST_TMPDIR/snapshots" || return 1
    for s in first second; do
        grep -qw "$s" "$BATS_TEST_TMPDIR/snapshots" || return 1
        qemu-img convert -f qcow2 -l snapshot.name=$s -O raw "$img" \
            "$BATS_TEST_TMPDIR/$s.after" || return 1
        cmp "$BATS_TEST_TMPDIR/$s.before" "$BATS_TEST_TMPDIR/$s.after" || return 1
    done
    # and the snapshot can still be applied and the image stays clean
    qemu-img snapshot -a first "$img" || return 1
    check_clean "$img" || return 1
    qemu-img compare -f qcow2 -F raw "$img" "$BATS_TEST_TMPDIR/first.before"
}

@test "write matrix: internal snapshots, v3" {
    case_snapshots 1.1 30
}

@test "write matrix: internal snapshots, v2" {
    case_snapshots 0.10 31
}

# case_compressed TYPE SEED: an image of compressed clusters (made by
# qemu-img convert -c) overwritten by the workload.
case_compressed ()
{
    local type=$1 seed raw=$BATS_TEST_TMPDIR/src.raw
    seed=$(write_seed "$2")
    truncate -s 48M "$raw"
    qemu-io -f raw -c "write -P 0x11 0 20M" -c "write -P 0x22 24M 10M" \
        -c "write -P 0x33 40M 8M" "$raw" >/dev/null
    # some clusters that do not compress (written as normal clusters)
    head -c 2M /dev/urandom | dd of="$raw" bs=64k seek=160 conv=notrunc status=none
    # and a few bytes in a cluster that is otherwise zero
    printf 'x' | dd of="$raw" bs=1 seek=$((36 * 1024 * 1024 + 77)) conv=notrunc status=none
    qemu-img convert -q -c -f raw -O qcow2 -o compression_type="$type" \
        "$raw" "$img"
    # the set-up really made compressed clusters
    run qemu-img check "$img"
    assert_success || return 1
    assert_output --regexp '[1-9][0-9.]*% compressed clusters' || return 1
    guest_view "$img" "$ref" || return 1

    run_workload "$img" 65536 "$seed"
}

@test "write matrix: compressed image (zlib) overwritten" {
    case_compressed zlib 40
}

@test "write matrix: compressed image (zstd) overwritten" {
    case_compressed zstd 41
}

@test "write matrix: external data file" {
    local data=$BATS_TEST_TMPDIR/test.data seed
    seed=$(write_seed 50)
    qemu-img create -q -f qcow2 -o data_file="$data" "$img" 48M
    prefill "$img" $((48 * 1024 * 1024))
    guest_view "$img" "$ref"
    run_workload "$img" 65536 "$seed"
}

@test "write matrix: external data file, data_file_raw" {
    local data=$BATS_TEST_TMPDIR/test.data seed
    seed=$(write_seed 51)
    qemu-img create -q -f qcow2 -o data_file="$data",data_file_raw=on "$img" 48M
    prefill "$img" $((48 * 1024 * 1024))
    guest_view "$img" "$ref"
    run_workload "$img" 65536 "$seed"
    # the data file is the guest view itself
    cmp "$data" "$ref"
}

# case_create SEED PLUGIN-ARGS...: the plugin makes the image itself
# (create=true); the result must be what QEMU accepts.
case_create ()
{
    local seed arg c
    seed=$(write_seed "$1"); shift
    test "$WRITE_SERVER" = nbdkit ||
        skip "create=true is a parameter of our plugin, not of $WRITE_SERVER"
    rm -f "$img"
    truncate -s 48M "$ref"
    expect_version=3
    [[ " $* " == *" compat=0.10 "* ]] && expect_version=2
    server_args=(create=true size=48M "$@")
    # the cluster size is only a hint to the workload
    c=65536
    for arg in "$@"; do
        case "$arg" in cluster-size=*) c=$(numfmt --from=iec "${arg#*=}") ;; esac
    done
    run_workload "$img" "$c" "$seed" || return 1
    local info
    info=$(qemu-img info --output=json "$img") || return 1
    assert_equal "$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])' \
                    <<<"$info")" $((48 * 1024 * 1024)) || return 1
    assert_equal "$(cluster_size_of "$img")" "$c"
}

@test "write matrix: create=true" {
    case_create 60
}

@test "write matrix: create=true, v2, 512 B clusters" {
    case_create 61 compat=0.10 cluster-size=512
}

@test "write matrix: create=true, extended L2, 2 MiB clusters, lazy refcounts" {
    case_create 62 extended-l2=on cluster-size=2M lazy-refcounts=on
}

@test "write matrix: create=true, refcount-bits=1, preallocation=metadata" {
    case_create 63 refcount-bits=1 preallocation=metadata
}
