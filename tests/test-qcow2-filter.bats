#!/usr/bin/env bats
# The qcow2 filter (filters/qcow2): the plugin below holds the image,
# the filter serves its guest view.  The oracle is QEMU, as for the
# plugin:
#  - reads: the read matrix and read features of the plugin's tests
#    through the filter over nbdkit's file plugin, its nbd plugin
#    (connected to qemu-nbd serving the image file raw) and its curl
#    plugin (from lighttpd): the bytes of `qemu-img convert`, the map of
#    qemu-nbd;
#  - the backing and data file policy (backing=none|local, backing-dir=,
#    data-file=) and its refusals;
#  - writes: the write matrix over the file plugin in image files with
#    room, a full layer (ENOSPC, still clean), create=true;
#  - faults of the layer below (nbdkit's error filter under ours),
#    hostile images, stacks with the compress and luks filters, and
#    what a high-latency layer sees (nbdkit's log and delay filters).

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"
load "$BATS_TEST_DIRNAME/bad-image-functions.bash"
load "$BATS_TEST_DIRNAME/fault-functions.bash"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy
    requires_module "$QCOW2_FILTER"
    img=$BATS_TEST_TMPDIR/test.qcow2
}

# ----------------------------------------------------------------------
# Reading: the read matrix over the file and nbd plugins.

@test "filter read matrix over file: every case" {
    QCOW2_VIA=filter-file whole_read_matrix
}

@test "filter read matrix over nbd: every case" {
    QCOW2_VIA=filter-nbd whole_read_matrix
}

@test "filter read over nbd: the nbd plugin's own export= reaches it" {
    local T=$BATS_TEST_TMPDIR
    qemu-img create -q -f qcow2 "$img" 4M
    qemu-io -f qcow2 -c 'write -P 0x42 1M 64k' "$img" >/dev/null
    qemu-img convert -O raw "$img" "$T/ref.raw"
    start_qemu_nbd_raw "$img" -r -x disk
    start_nbdkit -r --filter="$QCOW2_FILTER" nbd socket="$raw_sock" export=disk
    copy_export "$uri" "$T/ours.raw"
    cmp "$T/ours.raw" "$T/ref.raw"
}

@test "filter read over nbd: a server of one client (no multi-conn) gets one connection" {
    # timeout runs nbdkit itself, without the sanitizer runtime preloaded.
    skip_if_sanitizers "nbdkit under timeout"
    local T=$BATS_TEST_TMPDIR
    qemu-img create -q -f qcow2 "$img" 4M
    qemu-io -f qcow2 -c 'write -P 0x42 1M 64k' "$img" >/dev/null
    qemu-img convert -O raw "$img" "$T/ref.raw"
    # qemu-nbd --shared=1 leaves a second client waiting forever.
    start_qemu_nbd_raw "$img" -r --shared=1
    run timeout 60 nbdkit -r -U - --filter="$QCOW2_FILTER" nbd \
        socket="$raw_sock" --run 'nbdcopy "$uri" '"$T/ours.raw"
    assert_success
    cmp "$T/ours.raw" "$T/ref.raw"
}

# ----------------------------------------------------------------------
# Reading every kind of image (test-qcow2-read-features.bats' cases).

@test "filter reads: compressed (zlib, zstd), extended L2, qcow v1" {
    local T=$BATS_TEST_TMPDIR type
    make_source "$T/src.raw" 3M
    for type in zlib zstd; do
        qemu-img convert -c -O qcow2 -o compression_type=$type \
            "$T/src.raw" "$img"
        run qemu-img check "$img"
        assert_output --regexp ' [1-9][0-9.]*% compressed clusters'
        QCOW2_VIA=filter-file REF=$T/src.raw check_image "$img"
        QCOW2_VIA=filter-nbd REF=$T/src.raw check_image "$img"
    done
    rm -f "$img"
    qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k "$img" 4M
    qemu-io -f qcow2 -c 'write -P 1 4k 4k' -c 'write -z 64k 8k' \
        -c 'write -P 2 1M 100k' -c 'write -z -u 1M 4k' "$img" >/dev/null
    QCOW2_VIA=filter-nbd check_image "$img"
    qemu-img convert -O qcow "$T/src.raw" "$T/v1.qcow"
    QCOW2_VIA=filter-file QEMU_FMT=qcow check_image "$T/v1.qcow"
}

@test "filter reads: internal snapshots (snapshot=), read-only export" {
    local T=$BATS_TEST_TMPDIR
    qemu-img create -q -f qcow2 -o cluster_size=4k "$img" 4M
    qemu-io -f qcow2 -c 'write -P 1 0 1M' "$img" >/dev/null
    qemu-img snapshot -c first "$img"
    qemu-io -f qcow2 -c 'write -P 2 512k 1M' -c 'write -z 3M 64k' \
        "$img" >/dev/null
    qemu-img snapshot -c second "$img"
    qemu-img resize -q "$img" 6M
    qemu-io -f qcow2 -c 'write -P 3 5M 1M' "$img" >/dev/null
    QCOW2_VIA=filter-file check_snapshot "$img" first
    QCOW2_VIA=filter-nbd check_snapshot "$img" 2
    QCOW2_VIA=filter-file check_image "$img"
    QCOW2_VIA=filter-file start_ours "$img" snapshot=first
    run nbdinfo --json "$uri"
    assert_success
    assert_output --partial '"is_read_only": true'
}

@test "filter reads: encrypted (passphrase=), LUKS and legacy AES" {
    local T=$BATS_TEST_TMPDIR secret=secret,id=sec0,data=filter-pass opts
    for opts in encrypt.format=luks,encrypt.iter-time=10 encrypt.format=aes; do
        rm -f "$img"
        qemu_img_create -q -f qcow2 --object "$secret" \
            -o "$opts",encrypt.key-secret=sec0 "$img" 4M
        qemu-io --object "$secret" --image-opts \
            "driver=qcow2,file.filename=$img,encrypt.key-secret=sec0" \
            -c 'write -P 0x5a 1000 300k' -c 'write -z 1M 64k' >/dev/null
        qemu-img convert --object "$secret" --image-opts \
            "driver=qcow2,file.filename=$img,encrypt.key-secret=sec0" \
            -O raw "$T/ref.raw"
        echo -n filter-pass > "$T/pass"
        QCOW2_VIA=filter-nbd start_ours -r "$img" passphrase=+"$T/pass"
        copy_export "$uri" "$T/ours.raw"
        cmp "$T/ours.raw" "$T/ref.raw"
        cleanup_servers
    done
}

# ----------------------------------------------------------------------
# Backing and data files: the names in an image are not names on the
# layer below.  Nothing is opened unless the operator says how.

@test "filter backing: an image naming a backing file is refused without backing=" {
    local T=$BATS_TEST_TMPDIR
    make_chain "$T/chain" 64k
    assert_startup_refused --partial \
        "names backing file sub/mid.qcow2, which the filter does not look for" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2"
    assert_output --partial "backing=none"
    # Options the filter does not take, or that need another.
    assert_startup_refused --partial "use backing=local" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=auto
    assert_startup_refused --partial "backing-dir= only applies with backing=local" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=none \
        backing-dir="$T"
}

@test "filter backing: backing=none serves the top image alone" {
    local T=$BATS_TEST_TMPDIR alone
    make_chain "$T/chain" 64k
    alone='json:{"driver": "qcow2", "backing": null,
                 "file": {"driver": "file", "filename": "'$T/chain/top.qcow2'"}}'
    qemu-img convert -f qcow2 -O raw "$alone" "$T/alone.raw"
    QEMU_IMG_FOR_MAP=$alone REF=$T/alone.raw QCOW2_VIA=filter-nbd \
        check_image "$T/chain/top.qcow2" backing=none
}

@test "filter backing: backing=local follows the chain from backing-dir" {
    local T=$BATS_TEST_TMPDIR
    make_chain "$T/chain" 4k
    # Relative names need backing-dir=.
    assert_startup_refused --partial \
        "backing file sub/mid.qcow2 is a relative name: give backing-dir=DIR" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=local
    # From another directory: names are taken from backing-dir, not from
    # nbdkit's working directory.
    cd /
    QCOW2_VIA=filter-nbd check_image "$T/chain/top.qcow2" backing=local \
        backing-dir="$T/chain"
    # An absolute name needs no backing-dir.
    qemu-img create -q -f qcow2 -b "$T/chain/sub/mid.qcow2" -F qcow2 \
        "$T/abs.qcow2" 8M
    qemu-io -f qcow2 -c 'write -P 0xd1 1M 5k' "$T/abs.qcow2" >/dev/null
    QCOW2_VIA=filter-file check_image "$T/abs.qcow2" backing=local
}

@test "filter backing: a wrong backing-dir fails with the path it tried" {
    local T=$BATS_TEST_TMPDIR
    make_chain "$T/chain" 64k
    mkdir "$T/empty"
    assert_startup_refused --partial "$T/empty/sub/mid.qcow2" \
        --filter="$QCOW2_FILTER" file "$T/chain/top.qcow2" backing=local \
        backing-dir="$T/empty"
}

@test "filter backing: backing=local keeps the trust checks (no FIFO)" {
    local T=$BATS_TEST_TMPDIR
    mkfifo "$T/fifo"
    qemu-img create -q -f qcow2 -b fifo -F raw -u "$img" 1M
    assert_startup_refused_within 20000 --partial \
        "only a regular file or a block device can be one" \
        --filter="$QCOW2_FILTER" file "$img" backing=local backing-dir="$T"
}

@test "filter data file: refused unless data-file= or backing=local" {
    local T=$BATS_TEST_TMPDIR
    mkdir "$T/d"
    qemu-img create -q -f qcow2 -o data_file="$T/d/x.data" "$T/d/x.qcow2" 2M
    qemu-io -f qcow2 -c 'write -P 0x33 0 1M' "$T/d/x.qcow2" >/dev/null
    assert_startup_refused --partial \
        "names external data file $T/d/x.data, which the filter does not look for" \
        --filter="$QCOW2_FILTER" file "$T/d/x.qcow2"
    assert_output --partial "data-file=PATH"
    # backing=none opens nothing the image names either.
    assert_startup_refused --partial "give data-file=PATH" \
        --filter="$QCOW2_FILTER" file "$T/d/x.qcow2" backing=none
    QCOW2_VIA=filter-file check_image "$T/d/x.qcow2" data-file="$T/d/x.data"
    QCOW2_VIA=filter-nbd check_image "$T/d/x.qcow2" backing=local
    # A relative name from backing-dir (QEMU takes it from its working
    # directory: it is told where the file is instead).
    cd "$T/d"
    qemu-img create -q -f qcow2 -o data_file=y.data y.qcow2 2M
    qemu-io -f qcow2 -c 'write -P 0x44 64k 1M' y.qcow2 >/dev/null
    cd /
    local qemu_view
    qemu_view='json:{"driver": "qcow2", "data-file": {"driver": "file", "filename": "'$T/d/y.data'"},
                     "file": {"driver": "file", "filename": "'$T/d/y.qcow2'"}}'
    qemu-img convert -O raw "$qemu_view" "$T/y.raw"
    QEMU_IMG_FOR_MAP=$qemu_view REF=$T/y.raw QCOW2_VIA=filter-file \
        check_image "$T/d/y.qcow2" backing=local backing-dir="$T/d"
}

# ----------------------------------------------------------------------
# Writes: the write matrix (write-functions.sh) through the filter over
# nbdkit's file plugin, in image files made larger first (make_room):
# the layer below cannot grow, so every new cluster is found inside it.

write_setup ()
{
    test -x /usr/bin/python3 || skip "/usr/bin/python3 is not installed"
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    load "$BATS_TEST_DIRNAME/write-functions.sh"
    WRITE_SERVER=filter
    ref=$BATS_TEST_TMPDIR/ref.raw
}

@test "filter write matrix: v3, 64 KiB clusters" {
    write_setup
    case_plain 64M compat=1.1 101
}
@test "filter write matrix: v2, 512 B clusters" {
    write_setup
    case_plain 32M compat=0.10,cluster_size=512 102
}
@test "filter write matrix: v3, 2 MiB clusters" {
    write_setup
    case_plain 64M compat=1.1,cluster_size=2M 103
}
@test "filter write matrix: refcount_bits=64, 512 B clusters (refcount table grows)" {
    write_setup
    case_plain 32M refcount_bits=64,cluster_size=512 104
}
@test "filter write matrix: refcount_bits=1, extended L2" {
    write_setup
    case_plain 64M refcount_bits=1,extended_l2=on 105
}
@test "filter write matrix: lazy refcounts" {
    write_setup
    case_plain 64M lazy_refcounts=on 106
}
@test "filter write matrix: preallocation=falloc (room only from freed clusters)" {
    write_setup
    # No room added: the image's own preallocated clusters are all the
    # workload has (trims free some, rewrites reuse them).
    WRITE_ROOM=0 case_plain 64M preallocation=falloc 107
}
@test "filter write matrix: internal snapshots" {
    write_setup
    case_snapshots 1.1 108
}
@test "filter write matrix: compressed image (zstd) overwritten" {
    write_setup
    case_compressed zstd 109
}
@test "filter write matrix: backing file (backing=local)" {
    write_setup
    server_args=(backing=local)
    case_backing 1.1 "" 110
}
@test "filter write matrix: external data file (data-file=)" {
    write_setup
    server_args=(data-file="$BATS_TEST_TMPDIR/test.data")
    case_data_file 111
}
@test "filter write matrix: 4 connections, 64 requests in flight" {
    write_setup
    case_many_connections 112
}

@test "filter write: a dirty image (lazy refcounts, QEMU killed) is repaired inside the layer" {
    local seed bits
    write_setup
    seed=$(write_seed 140)
    # QEMU killed after writes with lazy refcounts: the refcounts on
    # disk do not count the new clusters, the dirty bit is set.
    qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4096 "$img" 32M
    run qemu-io -f qcow2 -c 'write -P 0x31 0 4M' -c 'write -P 0x32 20M 1M' \
        -c flush -c 'sigraise 9' "$img"
    bits=$(incompatible_bits "$img")
    ((bits & 1)) || fail "the image is not dirty (incompatible bits $bits)"
    run qemu-img check "$img"
    assert_failure
    guest_view "$img" "$ref"
    # The first writable client repairs it (the metadata counted up to
    # the end of the layer, past the stale refcounts), and writes go on.
    start_write_server "$img"
    workload run --uri "$uri" --reference "$ref" --seed "$seed" \
        --ops 200 --cluster-size 4096
    stop_write_server
    check_clean "$img"
    assert_not_dirty "$img"
    qemu-img compare -f qcow2 -F raw "$img" "$ref"
}

# fill_layer CREATE-OPTIONS SEED: an image of 128 MiB in a 12 MiB file,
# written until the layer is full: the request that found no room fails
# with ENOSPC and says so, a flush still works, `qemu-img check` finds
# nothing at all, and every request acknowledged before reads back.
# Then the file is made larger and the image takes writes again.
fill_layer ()
{
    local opts=$1 seed state=$BATS_TEST_TMPDIR/state
    local after=$BATS_TEST_TMPDIR/after.raw
    seed=$(write_seed "$2")
    qemu-img create -q -f qcow2 -o "$opts" "$img" 128M
    qemu-io -f qcow2 -c "write -P 0x11 1M 2M" "$img" >/dev/null
    guest_view "$img" "$ref"

    WRITE_ROOM=12M start_write_server "$img"
    workload run --uri "$uri" --reference "$ref" --seed "$seed" \
        --ops 100000 --without trim --inflight 8 --state "$state" \
        --expect-errno ENOSPC
    run grep -c "no room left: the file cannot grow past its 12582912 bytes" \
        "$server_log"
    assert_success
    stop_write_server
    assert_equal "$(stat -c %s "$img")" 12582912
    check_clean "$img"
    guest_view "$img" "$after"
    workload verify --state "$state" --image "$after"

    # Room again: a larger file, and the image goes on.
    mv "$after" "$ref"
    WRITE_ROOM=48M start_write_server "$img"
    workload run --uri "$uri" --reference "$ref" --seed "$((seed + 1))" \
        --ops 40 --without trim --max-size 65536
    stop_write_server
    check_clean "$img"
    qemu-img compare -f qcow2 -F raw "$img" "$ref"
}

@test "filter write: a full layer gives ENOSPC and the image stays clean, 64 KiB clusters" {
    write_setup
    fill_layer compat=1.1 120
}

@test "filter write: a full layer gives ENOSPC, 512 B clusters, 64-bit refcounts" {
    write_setup
    fill_layer cluster_size=512,refcount_bits=64 121
}

@test "filter write: a full layer gives ENOSPC, lazy refcounts, extended L2" {
    write_setup
    fill_layer lazy_refcounts=on,extended_l2=on 122
}

# ----------------------------------------------------------------------
# Hostile images (test-qcow2-bad-images.bats): the same verdicts through
# the filter as through the plugin, for a sample of each kind.

@test "filter bad images: bad headers are refused at start-up with the plugin's message" {
    make_bad_images "$BATS_TEST_TMPDIR"
    export QCOW2_VIA=filter-file
    refused_at_open magic 'bad magic'
    refused_at_open cluster-bits-22 'cluster_bits 22 is out of range'
    refused_at_open truncated-v3-header 'too short \(100 bytes\) for a version 3'
    refused_at_open l1-size-max 'l1_size 4294967295 is too large'
    refused_at_open l1-offset-past-eof 'L1 table .*beyond the end of the file'
    refused_at_open refcount-table-clusters-huge 'refcount table is too large \(4294967295 clusters\)'
    refused_at_open snapshots-offset-past-eof 'snapshot table .*beyond the end of the file'
    refused_at_open incompatible-bit-63 'unsupported incompatible feature bit 63'
    refused_at_open header-extension-past-cluster 'header extension 0x12345678 .*runs past'
    refused_at_open backing-file-past-cluster 'backing file name .*not inside the header cluster'
}

@test "filter bad images: bad L1 and L2 entries fail the reads that need them" {
    make_bad_images "$BATS_TEST_TMPDIR"
    export QCOW2_VIA=filter-file
    read_fails_l1 l1-entry-reserved-bit-56 'L1 entry 1 .*has reserved bits set'
    cleanup_servers
    read_fails_l1 l1-entry-past-eof 'L2 table offset 0x[0-9a-f]+ in L1 entry 1 is beyond the end of the file'
    cleanup_servers
    read_fails_l2 l2-entry-unaligned 'data cluster offset 0x[0-9a-f]+ .*is not cluster-aligned'
    cleanup_servers
    read_fails_l2 l2-entry-past-eof 'data cluster offset 0x[0-9a-f]+ .*is beyond the end of the file'
    cleanup_servers
    read_fails_payload l2-entry-compressed-garbage 65536 0 "$GOOD_V3_RAW" '[Cc]ompress|[Ii]nflate|[Dd]eflate'
    cleanup_servers
    read_fails_extl2 extl2-alloc-and-zero 65536 'both allocated and zero'
    cleanup_servers
    export QCOW2_VIA=filter-nbd
    read_fails_l2 l2-entry-reserved-bit-61 'L2 entry 0x[0-9a-f]+ at 0x[0-9a-f]+ has reserved bits set'
}

# ----------------------------------------------------------------------
# Faults of the layer below: nbdkit's error filter under the qcow2
# filter fails reads, writes and zeroes of the layer once the workload
# is connected (fault-functions.bash).  Every error reaches the client,
# nothing crashes, a failed write fails every later flush, and
# afterwards `qemu-img check` finds at most leaks and every flushed
# byte reads back.

fault_setup ()
{
    requires nbdsh nbdcopy
    dir=$BATS_TEST_TMPDIR
    make_image
    # room for the workload's new clusters (the layer cannot grow)
    truncate -s 32M "$dir/img.qcow2"
}

@test "filter faults: failed writes below fail the request and every later flush" {
    fault_setup
    error_filter_run "$(fault_seed 201)" --sticky -- pwrite=0.05
    error_filter_run "$(fault_seed 202)" --sticky -- pwrite=0.05
}

@test "filter faults: failed zeroes below (new metadata) fail like writes" {
    fault_setup
    error_filter_run "$(fault_seed 203)" --sticky -- zero=0.5
}

@test "filter faults: failed reads below fail the request, the server serves on" {
    fault_setup
    error_filter_run "$(fault_seed 204)" -- pread=0.3
    error_filter_run "$(fault_seed 205)" -- pread=0.3
}

@test "filter faults: ENOSPC from the layer below fails requests, then the image goes on" {
    fault_setup
    error_filter_run "$(fault_seed 206)" -- error=ENOSPC pwrite=0.05
}

# ----------------------------------------------------------------------
# create=true: the filter formats the layer below (here a file of
# garbage and zeroes) when the first client that may write connects;
# QEMU must accept the result.

# filter_create SEED PARAMS...: format, run the workload, check.
filter_create ()
{
    local seed c=65536 arg
    write_setup
    seed=$(write_seed "$1"); shift
    truncate -s 96M "$img"
    head -c 1M /dev/urandom | dd of="$img" conv=notrunc status=none
    truncate -s 48M "$ref"
    for arg in "$@"; do
        case "$arg" in cluster-size=*) c=$(numfmt --from=iec "${arg#*=}") ;; esac
    done
    WRITE_ROOM=0 start_write_server "$img" create=true size=48M "$@"
    workload run --uri "$uri" --reference "$ref" --seed "$seed" \
        --ops "${WRITE_OPS:-300}" --cluster-size "$c"
    stop_write_server
    # the layer keeps its size; QEMU finds a clean image of 48 MiB
    assert_equal "$(stat -c %s "$img")" $((96 * 1024 * 1024))
    check_clean "$img"
    qemu-img compare -f qcow2 -F raw "$img" "$ref"
    assert_equal "$(cluster_size_of "$img")" "$c"
    # Started again, the image is opened as it is, not formatted again.
    start_write_server "$img" create=true size=48M "$@"
    copy_export "$uri" "$BATS_TEST_TMPDIR/again.raw"
    cmp "$BATS_TEST_TMPDIR/again.raw" "$ref"
}

@test "filter create: create=true formats the layer below" {
    filter_create 130
}

@test "filter create: v2, 512 B clusters" {
    filter_create 131 compat=0.10 cluster-size=512
}

@test "filter create: extended L2, 2 MiB clusters, lazy refcounts, preallocation=metadata" {
    filter_create 132 extended-l2=on cluster-size=2M lazy-refcounts=on \
        preallocation=metadata
}

@test "filter create: never under nbdkit -r, nor into a layer too small" {
    local T=$BATS_TEST_TMPDIR
    truncate -s 8M "$img"
    cp "$img" "$T/orig"
    start_nbdkit -r --filter="$QCOW2_FILTER" file "$img" create=true size=1G
    run nbdinfo "$uri"
    assert_failure
    run grep -c "create=true: the layer below holds no image: it is formatted when a client that may write connects, and nbdkit -r never lets one" "$nbdkit_log"
    assert_success
    cmp "$img" "$T/orig"
    cleanup_servers
    # 1 GiB with every L2 table preallocated does not fit in 8 MiB.
    start_nbdkit --filter="$QCOW2_FILTER" file "$img" create=true size=1G \
        preallocation=metadata
    run nbdinfo "$uri"
    assert_failure
    run grep -E "create: .*the new image needs [0-9]+ bytes, but the file cannot grow past its 8388608" \
        "$nbdkit_log"
    assert_success
    # and refused options are refused at start-up
    assert_startup_refused --partial "data-file= cannot be given with create=true" \
        --filter="$QCOW2_FILTER" file "$img" create=true size=1M data-file="$T/orig"
    assert_startup_refused --partial "backing-file= with create=true needs backing=local" \
        --filter="$QCOW2_FILTER" file "$img" create=true backing-file=/x backing-format=raw
}

# ----------------------------------------------------------------------
# Stacks: the compress filter and the luks filter over the qcow2 filter.

@test "filter stacks: compress over the qcow2 filter stores compressed clusters" {
    local T=$BATS_TEST_TMPDIR size=$((24 * 1024 * 1024)) compressed
    load "$BATS_TEST_DIRNAME/compress-functions.bash"
    compress_requires
    $MAKE_DISK_IMAGE --seed 3 "$size" "$T/src.raw"
    qemu-img create -q -f qcow2 -o compression_type=zstd "$img" "$size"
    truncate -s $((2 * size)) "$img"
    QCOW2_VIA=filter-file compress_copy "$T/src.raw" "$img"
    check_clean "$img"
    qemu-img compare -f raw -F qcow2 "$T/src.raw" "$img"
    compressed=$(check_field "$img" compressed-clusters)
    echo "compressed clusters: $compressed"
    test "$compressed" -gt 0 || fail "no compressed clusters"
}

@test "filter stacks: luks over the qcow2 filter (a LUKS disk in a qcow2 image)" {
    local T=$BATS_TEST_TMPDIR pass=stack-pass
    load "$BATS_TEST_DIRNAME/luks-functions.bash"
    requires_module "$LUKS_FILTER"
    make_qemu_luks "$T/vol.luks" 8M "$pass"
    qemu-io --object "$(qemu_luks_secret "$pass")" --image-opts \
        "$(qemu_luks_image "$T/vol.luks")" -c 'write -P 0x5c 0 3M' >/dev/null
    qemu-img convert --object "$(qemu_luks_secret "$pass")" --image-opts \
        "$(qemu_luks_image "$T/vol.luks")" -O raw "$T/model.raw"
    # The volume's bytes as the guest disk of a qcow2 image, with room.
    qemu-img convert -f raw -O qcow2 "$T/vol.luks" "$img"
    truncate -s 32M "$img"

    start_nbdkit --filter="$LUKS_FILTER" --filter="$QCOW2_FILTER" \
        file "$img" passphrase="$pass"
    copy_export "$uri" "$T/ours.raw"
    cmp "$T/ours.raw" "$T/model.raw"
    unaligned_writes "$uri" "$T/model.raw"
    stop_server "$nbdkit_pid"

    # QEMU: the image is clean, and the volume in it decrypts to the model.
    check_clean "$img"
    qemu-img convert -f qcow2 -O raw "$img" "$T/vol2.luks"
    qemu-img compare --object "$(qemu_luks_secret "$pass")" --image-opts \
        "$(qemu_luks_image "$T/vol2.luks")" "driver=raw,file.filename=$T/model.raw"
}

# ----------------------------------------------------------------------
# High-latency layers: what the filter asks of the layer below.

# assert_in_parallel: after `run` of 8 reads from a layer 400 ms away
# that print ms=N: they took about 400 ms at once, not 8 x 400 ms.
assert_in_parallel ()
{
    assert_success
    echo "$output"
    [[ "$output" =~ ms=([0-9]+) ]] || fail "no time in the output"
    test "${BASH_REMATCH[1]}" -lt 1600 ||
        fail "8 reads took ${BASH_REMATCH[1]} ms: not in parallel"
}

@test "filter latency: contiguous clusters in one request below, L2 tables read once" {
    local T=$BATS_TEST_TMPDIR before
    qemu-img create -q -f qcow2 -o cluster_size=64k "$img" 64M
    qemu-io -f qcow2 -c 'write -P 0x21 0 8M' "$img" >/dev/null
    start_nbdkit -r --filter="$QCOW2_FILTER" --filter=log file "$img" \
        logfile="$T/below.log"
    # reads_below: the reads the layer below has seen so far.
    reads_below () { grep -c ' Read ' "$T/below.log" || true; }
    before=$(reads_below)
    nbd_pread "$uri" 0 $((4 * 1024 * 1024)) > "$T/first"
    grep ' Read ' "$T/below.log" | tail -n +$((before + 1))
    # one L2 table and one run of 64 clusters
    assert_equal "$(reads_below)" $((before + 2))
    run grep -c ' Read .*count=0x400000 ' "$T/below.log"
    assert_output 1
    before=$(reads_below)
    nbd_pread "$uri" $((4 * 1024 * 1024)) $((4 * 1024 * 1024)) > "$T/second"
    # the L2 table is cached: only the data
    assert_equal "$(reads_below)" $((before + 1))
    cmp "$T/first" "$T/second"
}

@test "filter write: dirty L2 tables are written back in file order" {
    local T=$BATS_TEST_TMPDIR
    # 32 L2 tables of 512 B, each given a zero flag, in shuffled order.
    qemu-img create -q -f qcow2 -o cluster_size=512,preallocation=metadata \
        "$img" 1M
    start_nbdkit --filter="$QCOW2_FILTER" --filter=log file "$img" \
        logfile="$T/below.log"
    run timeout 60 nbdsh -u "$uri" -c '
import random
ks = list(range(32))
random.seed(3)
random.shuffle(ks)
for k in ks:
    h.zero(512, k * 32768)
h.flush()
'
    assert_success
    grep -o ' Write id=[0-9]* offset=0x[0-9a-f]*' "$T/below.log" |
        sed 's/.*offset=//' > "$T/offsets"
    run wc -l < "$T/offsets"
    assert_output 32
    run /usr/bin/python3 -c '
import sys
v = [int(l, 16) for l in open(sys.argv[1])]
print("ascending" if v == sorted(v) else "out of order: %s" % v)' "$T/offsets"
    assert_output ascending
    cleanup_servers
    check_clean "$img"
}

@test "filter latency: independent requests go down in parallel" {
    qemu-img create -q -f qcow2 -o cluster_size=64k "$img" 64M
    qemu-io -f qcow2 -c 'write -P 0x21 0 16M' "$img" >/dev/null
    start_nbdkit -r --filter="$QCOW2_FILTER" --filter=delay file "$img" \
        rdelay=400ms
    # 8 reads of 64 KiB 1 MiB apart, all in flight at once, after one
    # read that loads the L2 table: 8 x 400 ms one after another, or
    # about 400 ms in parallel.
    run timeout 60 nbdsh -u "$uri" -c '
import time
h.pread(512, 0)
bufs = [nbd.Buffer(65536) for i in range(8)]
t0 = time.monotonic()
for i in range(8):
    h.aio_pread(bufs[i], i * 1048576 + 65536)
while h.aio_in_flight() > 0:
    h.poll(-1)
print("ms=%d" % ((time.monotonic() - t0) * 1000))
'
    assert_in_parallel
}

@test "filter latency: a plugin below that serializes requests gets them in parallel" {
    qemu-img create -q -f qcow2 -o cluster_size=64k "$img" 64M
    qemu-io -f qcow2 -c 'write -P 0x21 0 16M' "$img" >/dev/null
    # noparallel makes the plugin below take one request at a time per
    # context (the curl plugin's model); nbdkit then serializes each
    # client connection too, so 8 clients read at once.
    start_nbdkit -r --filter="$QCOW2_FILTER" --filter=noparallel \
        --filter=delay file "$img" serialize=requests rdelay=400ms
    run timeout 60 nbdsh -u "$uri" -c '
import time
handles = [nbd.NBD() for i in range(8)]
for c in handles:
    c.connect_uri(h.get_uri())
h.pread(512, 0)
bufs = [nbd.Buffer(65536) for i in range(8)]
t0 = time.monotonic()
for i, c in enumerate(handles):
    c.aio_pread(bufs[i], i * 1048576 + 65536)
while sum(c.aio_in_flight() for c in handles) > 0:
    for c in handles:
        if c.aio_in_flight() > 0:
            c.poll(0)
    time.sleep(0.01)
print("ms=%d" % ((time.monotonic() - t0) * 1000))
'
    assert_in_parallel
}

# ----------------------------------------------------------------------
# Over HTTP: nbdkit's curl plugin from a local lighttpd.

@test "filter over curl: the read matrix and compressed clusters over HTTP" {
    requires lighttpd curl
    local T=$BATS_TEST_TMPDIR
    QCOW2_VIA=filter-curl matrix 1.1 65536 16
    rm -f "$img"
    QCOW2_VIA=filter-curl matrix 0.10 512 16
    make_source "$T/src.raw" 3M
    qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/src.raw" "$T/c.qcow2"
    QCOW2_VIA=filter-curl REF=$T/src.raw check_image "$T/c.qcow2"
    # The curl plugin offers writes, which lighttpd refuses: a write
    # fails with an error, reads go on, and the image is unchanged.
    cp "$T/c.qcow2" "$T/orig.qcow2"
    QCOW2_VIA=filter-curl start_ours "$T/c.qcow2"
    run nbdsh -u "$uri" -c 'h.pwrite(b"x" * 4096, 65536); h.flush()'
    assert_failure
    nbd_pread "$uri" 0 4096 > "$T/first"
    cmp -n 4096 "$T/first" "$T/src.raw"
    cleanup_servers
    cmp "$T/c.qcow2" "$T/orig.qcow2"
}
