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
    case_many_connections 18
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

@test "write matrix: internal snapshots, v3" {
    case_snapshots 1.1 30
}

@test "write matrix: internal snapshots, v2" {
    case_snapshots 0.10 31
}

@test "write matrix: compressed image (zlib) overwritten" {
    case_compressed zlib 40
}

@test "write matrix: compressed image (zstd) overwritten" {
    case_compressed zstd 41
}

@test "write matrix: external data file" {
    case_data_file 50
}

@test "write matrix: external data file, data_file_raw" {
    case_data_file 51 data_file_raw=on
    # the data file is the guest view itself
    cmp "$BATS_TEST_TMPDIR/test.data" "$ref"
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
