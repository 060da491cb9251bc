#!/usr/bin/env bats
# Power cuts (issue 9 section 4): nbdkit runs a seeded workload once per
# image kind with tests/io-shim.c recording every write and sync it
# makes on the image (and data file); tests/power-cut.py then
# materialises what a power cut at many points would leave on disk and
# checks it with qemu-img (see the script for the disk model and the
# oracle).  POWER_CUT_SEED=N shifts the seeds; POWER_CUT_CUTS=N sets the
# random cut points per image (besides every completed flush).
#
# Lazy refcounts: a cut leaves the image dirty, and the format promises
# no more than refcounts QEMU rebuilds when it opens a dirty image; so
# the oracle there is `qemu-img check -r all` repairing everything (exit
# 0 or 3), as QEMU's open would, and the data checks after the repair.
# (The engine keeps its refcount ordering for lazy images too: measured,
# a plain `qemu-img check` finds every cut clean as well.)

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

SECRET=power-cut-secret
POWER_CUT=$BATS_TEST_DIRNAME/power-cut.py

setup ()
{
    requires qemu-img qemu-io nbdsh
    requires_io_shim
}

# make_initial IMAGE [QEMU-IMG-CREATE-ARGS...]: an image of $size MiB
# (default 8) in $BATS_TEST_TMPDIR/run whose first $fill MiB (default
# 5) hold seeded data (so that "old data" is not just zeroes), copied
# to .../initial.
make_initial ()
{
    local name=$1; shift
    local run=$BATS_TEST_TMPDIR/run
    mkdir -p "$run" "$BATS_TEST_TMPDIR/initial"
    /usr/bin/python3 -c '
import random, sys
r = random.Random(int(sys.argv[1]))
sys.stdout.buffer.write(r.randbytes(int(float(sys.argv[2]) * (1 << 20))))' \
        "$(power_cut_seed 100)" "${fill:-5}" >"$BATS_TEST_TMPDIR/fill.raw"
    truncate -s "${size:-8}M" "$BATS_TEST_TMPDIR/fill.raw"
    (cd "$run" && qemu_img_create -q "$@" "$name" "${size:-8}M") || return 1
    # In the image's directory: QEMU opens a relative data file name
    # from the current directory.
    (cd "$run" && qemu-img convert -n -f raw "$BATS_TEST_TMPDIR/fill.raw" \
        $(target_args "$name")) || return 1
    cp -a "$run/." "$BATS_TEST_TMPDIR/initial/"
}

# target_args IMAGE: how qemu-img names the image as a -n target.
target_args ()
{
    if test -n "$encrypted"; then
        echo "--object secret,id=sec0,data=$SECRET --target-image-opts" \
            "driver=qcow2,file.filename=$1,encrypt.key-secret=sec0"
    else
        echo "-O qcow2 $1"
    fi
}

power_cut_seed ()
{
    echo $((${POWER_CUT_SEED:-0} + $1))
}

# power_cut SEED IMAGE [DATA-FILE] -- [PLUGIN-ARGS...] [-- CHECK-ARGS...]:
# run the recorded workload on $BATS_TEST_TMPDIR/run/IMAGE, then check
# the cut points.
power_cut ()
{
    local seed=$1 name=$2 data= run=$BATS_TEST_TMPDIR/run
    shift 2
    if test "$1" != --; then data=$1; shift; fi
    shift
    local plugin_args=() check_args=()
    while test $# -gt 0 && test "$1" != --; do plugin_args+=("$1"); shift; done
    test $# -gt 0 && shift
    check_args=("$@")
    local files=$run/$name journal=$BATS_TEST_TMPDIR/journal
    test -z "$data" || files=$files:$run/$data
    : >"$journal"

    with_io_shim IO_SHIM_FILES="$files" IO_SHIM_JOURNAL="$journal" -- \
        start_nbdkit "$QCOW2_PLUGIN" file="$run/$name" "${plugin_args[@]}"
    run timeout 300 /usr/bin/python3 "$POWER_CUT" run --uri "$uri" \
        --journal "$journal" --ops-file "$BATS_TEST_TMPDIR/ops" \
        --seed "$seed" --ops "${POWER_CUT_OPS:-120}"
    assert_success
    # A clean shutdown, recorded too (its writes are cut points).
    local status=0
    stop_server "$nbdkit_pid" || status=$?
    if test "$status" -ne 0; then
        cat "$nbdkit_log" >&2
        fail "nbdkit exited with status $status"
    fi
    run timeout 600 /usr/bin/python3 "$POWER_CUT" check \
        --journal "$journal" --ops-file "$BATS_TEST_TMPDIR/ops" \
        --initial "$BATS_TEST_TMPDIR/initial" --image "$name" \
        ${data:+--data-file "$data"} --scratch "$BATS_TEST_TMPDIR/cut" \
        --seed "$seed" --cuts "${POWER_CUT_CUTS:-220}" "${check_args[@]}"
    echo "$output" >&3
    assert_success
}

@test "power cut: plain image" {
    make_initial img.qcow2 -f qcow2
    power_cut "$(power_cut_seed 1)" img.qcow2 --
}

@test "power cut: 512-byte clusters and the smallest L2 cache (checkpoints on eviction, the refcount table moves)" {
    # The refcount table (one cluster: 64 refcount blocks of 128 KiB)
    # has to move when the file passes 8 MiB.
    size=12 fill=7.7
    make_initial img.qcow2 -f qcow2 -o cluster_size=512
    power_cut "$(power_cut_seed 2)" img.qcow2 -- l2-cache-size=64K
}

@test "power cut: lazy refcounts" {
    make_initial img.qcow2 -f qcow2 -o lazy_refcounts=on
    power_cut "$(power_cut_seed 3)" img.qcow2 -- -- --lazy
}

@test "power cut: compressed writes" {
    make_initial img.qcow2 -f qcow2
    power_cut "$(power_cut_seed 4)" img.qcow2 -- compressed-writes=true
}

@test "power cut: extended L2 entries" {
    make_initial img.qcow2 -f qcow2 -o extended_l2=on,cluster_size=64k
    power_cut "$(power_cut_seed 5)" img.qcow2 --
}

@test "power cut: encrypted (LUKS) image" {
    encrypted=1
    make_initial img.qcow2 -f qcow2 --object "secret,id=sec0,data=$SECRET" \
        -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
    power_cut "$(power_cut_seed 6)" img.qcow2 -- passphrase="$SECRET" \
        -- --secret "$SECRET"
}

@test "power cut: external data file" {
    make_initial img.qcow2 -f qcow2 -o data_file=data.raw
    power_cut "$(power_cut_seed 7)" img.qcow2 data.raw --
}

@test "power cut: internal snapshot (copy-on-write of shared clusters)" {
    make_initial img.qcow2 -f qcow2
    qemu-img snapshot -c snap1 "$BATS_TEST_TMPDIR/run/img.qcow2"
    cp -a "$BATS_TEST_TMPDIR/run/." "$BATS_TEST_TMPDIR/initial/"
    power_cut "$(power_cut_seed 8)" img.qcow2 --
}
