#!/usr/bin/env bats
# Faults of the layer below (issue 9 section 3): reads, writes, flushes
# and punches of the image file (or the data file) fail at chosen
# points of a seeded workload, through tests/io-shim.c preloaded into
# nbdkit (for the luks filter: nbdkit's error filter below it).  Every
# error reaches the client as an error, the server survives (exit
# status, sanitizer reports: cleanup_servers), after a failed write or
# flush of the qcow2 plugin every later flush fails, and once the
# faults stop `qemu-img check` finds at most leaks and every byte
# flushed before the last successful flush reads back (with QEMU, and
# through a new server without faults, which also takes writes again).
# FAULTS_SEED=N shifts the seeds.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/fault-functions.bash"

SECRET=fault-secret

setup ()
{
    requires qemu-img qemu-io nbdsh nbdcopy
    requires_io_shim
    dir=$BATS_TEST_TMPDIR
    faults_total=0
}

@test "faults: a failed image write fails the request, and every later flush" {
    make_image
    local n
    for n in 1 4 15 40; do
        fault_run "$(fault_seed $n)" "$dir/img.qcow2" "write=$n" --sticky
    done
}

@test "faults: a failed fdatasync fails the flush, and every later one" {
    make_image
    local n
    for n in 1 2 5; do
        fault_run "$(fault_seed $((10 + n)))" "$dir/img.qcow2" "flush=$n" --sticky
    done
}

@test "faults: failed reads fail the request, the server serves on" {
    make_image
    local n
    for n in 1 6 30; do
        fault_run "$(fault_seed $((20 + n)))" "$dir/img.qcow2" "read=$n"
    done
}

@test "faults: a failed punch of freed clusters only keeps their space" {
    # The clusters are free in the refcounts whatever they hold: no
    # request fails (common/qcow2/refcount.c punch_run).
    make_image
    fault_run "$(fault_seed 31)" "$dir/img.qcow2" "punch=1+" --may-not-fail
}

@test "faults: ENOSPC from some point on, then space again" {
    make_image
    local n
    for n in 5 30; do
        fault_run "$(fault_seed $((40 + n)))" "$dir/img.qcow2" \
            "write=$n+:ENOSPC,punch=1+:ENOSPC"
    done
}

@test "faults: random failures of any call (seeded)" {
    make_image
    local s
    for s in 1 2 3 4; do
        fault_run "$(fault_seed $((50 + s)))" "$dir/img.qcow2" "any=p0.03"
    done
}

@test "faults: the external data file fails writes, flushes, reads" {
    make_image -o data_file=data.raw
    fault_run "$(fault_seed 61)" "$dir/data.raw" "write=3" --sticky
    fault_run "$(fault_seed 62)" "$dir/data.raw" "flush=1" --sticky
    fault_run "$(fault_seed 63)" "$dir/data.raw" "read=5"
}

@test "faults: an encrypted image fails writes and flushes" {
    encrypted=1
    make_image --object "secret,id=sec0,data=$SECRET" \
        -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
    fault_run "$(fault_seed 71)" "$dir/img.qcow2" "write=7" --sticky -- \
        passphrase="$SECRET"
    fault_run "$(fault_seed 72)" "$dir/img.qcow2" "flush=2" --sticky -- \
        passphrase="$SECRET"
}

# The luks filter over nbdkit's error filter (reads, writes, zeroes and
# trims of the layer below fail at random once the trigger file exists)
# and over the shim (fdatasync of the volume fails).
luks_args ()
{
    echo "--object secret,id=sec0,data=$SECRET --image-opts" \
        "driver=luks,file.filename=$dir/vol.luks,key-secret=sec0"
}

luks_fault_run ()
{
    local seed=$1 rules=$2
    shift 2
    local arm=$dir/arm.$seed
    rm -f "$arm"
    with_io_shim IO_SHIM_FILES="$dir/vol.luks" IO_SHIM_FAULTS="$rules" \
        IO_SHIM_ARM="$arm" IO_SHIM_SEED="$seed" -- \
        start_nbdkit --filter="$LUKS_FILTER" --filter=error \
        file "$dir/vol.luks" passphrase="$SECRET" "$@"
    run timeout 300 /usr/bin/python3 "$FAULT_WORKLOAD" run --uri "$uri" \
        --initial "$dir/initial.raw" --state "$dir/state" --arm "$arm" \
        --seed "$seed"
    echo "$output"
    assert_success
    echo "$rules $*: $output" >&3
    stop_checked
    rm -f "$dir/after.raw"
    qemu-img convert $(luks_args) -O raw "$dir/after.raw"
    run /usr/bin/python3 "$FAULT_WORKLOAD" verify --state "$dir/state" \
        --image "$dir/after.raw"
    echo "$output"
    assert_success
    # without faults: the same content, and writes again
    start_nbdkit --filter="$LUKS_FILTER" file "$dir/vol.luks" \
        passphrase="$SECRET"
    copy_export "$uri" "$dir/served.raw"
    cmp "$dir/after.raw" "$dir/served.raw"
    stop_checked
    mv "$dir/after.raw" "$dir/initial.raw"
}

@test "faults: the luks filter passes on every error of the layer below" {
    requires_module "$LUKS_FILTER"
    qemu_img_create -q -f luks --object "secret,id=sec0,data=$SECRET" \
        -o key-secret=sec0,iter-time=10 "$dir/vol.luks" 8M
    qemu-io $(luks_args) -c "write -P 0x3c 0 3M" >/dev/null
    rm -f "$dir/initial.raw"
    qemu-img convert $(luks_args) -O raw "$dir/initial.raw"
    luks_fault_run "$(fault_seed 81)" "flush=2" \
        error-pwrite-rate=0.05 error-pwrite-file="$dir/arm.$(fault_seed 81)"
    luks_fault_run "$(fault_seed 82)" "" \
        error-pread-rate=0.05 error-pread-file="$dir/arm.$(fault_seed 82)" \
        error-zero-rate=0.1 error-zero-file="$dir/arm.$(fault_seed 82)" \
        error-trim-rate=0.1 error-trim-file="$dir/arm.$(fault_seed 82)"
}
