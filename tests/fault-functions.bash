# Faults of the layer below (test-qcow2-faults.bats, and the qcow2
# filter's test-qcow2-filter.bats).   -*- shell-script -*-
# Load after functions.sh.  The caller's setup sets $dir (a directory
# of the test's own); our side is served as QCOW2_VIA says (ours_args
# in functions.sh).

FAULT_WORKLOAD=$BATS_TEST_DIRNAME/fault-workload.py

fault_seed ()
{
    echo $((${FAULTS_SEED:-0} + $1))
}

# image_args IMAGE: how qemu-img names IMAGE.
image_args ()
{
    if test -n "${encrypted:-}"; then
        echo "--object secret,id=sec0,data=$SECRET --image-opts" \
            "driver=qcow2,file.filename=$1,encrypt.key-secret=sec0"
    else
        echo "-f qcow2 $1"
    fi
}

# make_image [QEMU-IMG-CREATE-ARGS...]: $dir/img.qcow2, 8 MiB with
# data in the first 3 MiB; its guest view in $dir/initial.raw.
make_image ()
{
    rm -f "$dir/img.qcow2" "$dir/data.raw"
    (cd "$dir" && qemu_img_create -q -f qcow2 "$@" img.qcow2 8M) || return 1
    (cd "$dir" && qemu-io $(image_args img.qcow2) \
        -c "write -P 0x3c 0 3M" >/dev/null) || return 1
    fault_view "$dir/initial.raw"
}

# fault_view RAW: what QEMU reads from $dir/img.qcow2.
fault_view ()
{
    rm -f "$1"
    (cd "$dir" && qemu-img convert $(image_args img.qcow2) -O raw "$1")
}

# stop_checked: stop the server; it must exit by itself, status 0 (a
# failed write-back at close is an error message, not a crash).
stop_checked ()
{
    local status=0 entry kept=()
    stop_server "$nbdkit_pid" || status=$?
    for entry in "${_servers[@]}"; do
        test "${entry#*:}" = "$nbdkit_pid" || kept+=("$entry")
    done
    _servers=("${kept[@]}")
    if test "$status" -ne 0; then
        cat "$nbdkit_log" >&2
        fail "nbdkit exited with status $status"
    fi
}

# fault_workload SEED [WORKLOAD-ARGS...]: the fault workload on $uri,
# creating $dir/arm.SEED once connected; its summary is left in $output.
fault_workload ()
{
    local seed=$1
    shift
    run timeout 300 /usr/bin/python3 "$FAULT_WORKLOAD" run --uri "$uri" \
        --initial "$dir/initial.raw" --state "$dir/state" \
        --arm "$dir/arm.$seed" --seed "$seed" "$@"
    echo "$output"
    assert_success
}

# fault_run SEED FILES RULES [WORKLOAD-ARGS...] -- [PLUGIN-ARGS...]: the
# workload on $dir/img.qcow2 with RULES failing calls on FILES (a colon
# list), from the moment the client is connected; then the checks.
fault_run ()
{
    local seed=$1 files=$2 rules=$3
    shift 3
    local wargs=()
    while test $# -gt 0 && test "$1" != --; do wargs+=("$1"); shift; done
    test $# -gt 0 && shift
    local arm=$dir/arm.$seed
    rm -f "$arm"

    ours_args "$dir/img.qcow2" || return 1
    with_io_shim IO_SHIM_FILES="$files" IO_SHIM_FAULTS="$rules" \
        IO_SHIM_ARM="$arm" IO_SHIM_SEED="$seed" -- \
        start_nbdkit "${ours_args[@]}" "$@"
    fault_workload "$seed" "${wargs[@]}" || return 1
    local log=$nbdkit_log injected
    stop_checked
    injected=$(faults_injected "$log")
    echo "$rules: $injected faults injected, $output" >&3
    faults_total=$((faults_total + injected))
    test "$injected" -gt 0 || fail "the shim injected no fault ($rules)"

    check_after "$@"
}

# check_after [PLUGIN-ARGS...]: the faults have stopped.
check_after ()
{
    run bash -c "cd '$dir' && qemu-img check $(image_args img.qcow2)"
    if test "$status" -ne 0 && test "$status" -ne 3; then
        echo "$output"
        fail "qemu-img check: exit $status"
    fi
    fault_view "$dir/after.raw"
    run /usr/bin/python3 "$FAULT_WORKLOAD" verify --state "$dir/state" \
        --image "$dir/after.raw"
    echo "$output"
    assert_success

    # A server without faults serves the same, and takes writes again.
    ours_args "$dir/img.qcow2" || return 1
    start_nbdkit "${ours_args[@]}" "$@"
    copy_export "$uri" "$dir/served.raw"
    cmp "$dir/after.raw" "$dir/served.raw"
    run nbdsh -u "$uri" -c 'h.pwrite(b"\x5a" * 69632, 12288); h.flush()'
    assert_success
    stop_checked
    run bash -c "cd '$dir' && qemu-img check $(image_args img.qcow2)"
    if test "$status" -ne 0 && test "$status" -ne 3; then
        echo "$output"
        fail "qemu-img check after new writes: exit $status"
    fi
    fault_view "$dir/initial.raw"       # the next round starts here
}

# error_filter_run SEED [WORKLOAD-ARGS...] -- [error=ERRNO] OP=RATE...:
# the workload on $dir/img.qcow2 through the qcow2 filter over nbdkit's
# error filter, which fails each OP (pread, pwrite, zero, trim) of the
# layer below at RATE (0.05: 5 %) once the workload is connected (from
# when $dir/arm.SEED exists); then the checks of check_after, through
# the filter without the error filter.
error_filter_run ()
{
    local seed=$1
    shift
    local wargs=() params=() injected arg
    while test $# -gt 0 && test "$1" != --; do wargs+=("$1"); shift; done
    test $# -gt 0 && shift
    for arg in "$@"; do
        case "$arg" in
        error=*) params+=("$arg") ;;
        *=*) params+=("error-${arg%%=*}-rate=${arg#*=}"
                      "error-${arg%%=*}-file=$dir/arm.$seed") ;;
        esac
    done
    rm -f "$dir/arm.$seed"

    start_nbdkit --filter="$QCOW2_FILTER" --filter=error \
        file "$dir/img.qcow2" "${params[@]}"
    fault_workload "$seed" "${wargs[@]}" || return 1
    local log=$nbdkit_log
    stop_checked
    injected=$(grep -c 'error: injecting' "$log" || true)
    echo "$*: $injected errors injected, $output" >&3
    test "$injected" -gt 0 || fail "the error filter injected no error ($*)"
    QCOW2_VIA=filter-file check_after
}
