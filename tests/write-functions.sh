# Helpers for the write-path tests (tests/test-qcow2-write-*.bats).
# -*- shell-script -*-
#
# Load it after functions.sh:
#
#   load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
#   load write-functions
#
# The server under test is our plugin, read-write:
#
#   nbdkit ./qcow2.so file=IMG
#
# With WRITE_SERVER=qemu-nbd in the environment the same tests run
# against `qemu-nbd --shared=0 -t -f qcow2 IMG` instead.  That is how
# the harness itself is proven: every test must pass against QEMU.
# WRITE_SERVER=filter runs them through the qcow2 filter over nbdkit's
# file plugin, in the image file made larger first (WRITE_ROOM).
#
# WRITE_SEED=N shifts every seed (to explore); WRITE_SEED=random picks
# one, which the failing test prints.

WRITE_SERVER=${WRITE_SERVER:-nbdkit}
WORKLOAD=$BATS_TEST_DIRNAME/write-workload.py

# write_seed N: the seed for a case, shifted by WRITE_SEED.
write_seed ()
{
    local base=${WRITE_SEED:-0}
    if test "$base" = random; then
        base=${_write_random_seed:=$((RANDOM * 32768 + RANDOM))}
    fi
    echo $((base + $1))
}

# qemu_nbd_rw IMAGE [ARGS...]: serve IMAGE read-write with qemu-nbd,
# any number of connections, in the background.  Sets server_pid and
# uri; the server is stopped by cleanup_servers.
qemu_nbd_rw ()
{
    local img=$1; shift
    local n=$((++_server_count)) dir
    dir=$(_server_dir)
    local sock=$dir/qemu-rw$n.sock pidfile=$dir/qemu-rw$n.pid
    local log=$dir/qemu-rw$n.log

    qemu-nbd --fork --persistent --pid-file="$pidfile" -k "$sock" \
        --shared=0 -t -f qcow2 "$@" "$img" </dev/null >"$log" 2>&1 3>&- || {
        cat "$log" >&2
        # Anything the child writes to stderr fails the parent, while
        # the child may serve on: stop it too.
        if test -s "$pidfile"; then
            _servers+=("qemu-nbd:$(cat "$pidfile")")
        fi
        return 1
    }
    server_pid=$(cat "$pidfile")
    _servers+=("qemu-nbd:$server_pid")
    uri="nbd+unix:///?socket=$sock"
    server_log=$log
}

# make_room IMAGE: with WRITE_SERVER=filter, make the image file at
# least WRITE_ROOM bytes long (default: twice the virtual size and
# 64 MiB more), zeroes the image does not use: the layer below the
# filter cannot grow, so new clusters must fit in the file.
make_room ()
{
    local vsize room
    vsize=$(qemu-img info --output=json "$1" |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])') ||
        return 1
    room=${WRITE_ROOM:-$((2 * vsize + 64 * 1024 * 1024))}
    truncate -s ">$room" "$1"
}

# start_write_server IMAGE [PLUGIN-ARGS...]: serve IMAGE read-write
# with the server under test.  PLUGIN-ARGS are for our plugin (or
# filter) only.  Sets uri, server_pid, server_log.
start_write_server ()
{
    local img=$1; shift
    case "$WRITE_SERVER" in
    qemu-nbd)
        qemu_nbd_rw "$img" || return 1
        ;;
    nbdkit)
        start_nbdkit "$QCOW2_PLUGIN" file="$img" "$@" || return 1
        server_pid=$nbdkit_pid
        server_log=$nbdkit_log
        ;;
    filter)
        if test -e "$img"; then make_room "$img" || return 1; fi
        start_nbdkit --filter="$QCOW2_FILTER" file "$img" "$@" || return 1
        server_pid=$nbdkit_pid
        server_log=$nbdkit_log
        ;;
    *)
        echo "WRITE_SERVER must be nbdkit, filter or qemu-nbd" >&2
        return 1
        ;;
    esac
    # A server that quietly came up read-only would make every write
    # test fail in a confusing way.
    local info
    info=$(nbdinfo "$uri") || return 1
    if grep -q 'is_read_only: true' <<<"$info"; then
        echo "$WRITE_SERVER serves $img read-only" >&2
        return 1
    fi
}

# stop_write_server: a clean shutdown of the server (which must write
# back its metadata and exit 0).
stop_write_server ()
{
    local status=0
    stop_server "$server_pid" || status=$?
    if test "$status" -ne 0; then
        echo "$WRITE_SERVER exited with status $status:" >&2
        cat "$server_log" >&2
        return 1
    fi
}

# kill_write_server: kill -9, as a crash.  Fails if the server was
# already gone (it crashed by itself before the kill) or, for nbdkit
# (our child, whose status we see), died of anything but the SIGKILL.
kill_write_server ()
{
    local status=0
    if ! server_alive "$server_pid"; then
        echo "$WRITE_SERVER (pid $server_pid) died before the kill:" >&2
        cat "$server_log" >&2
        return 1
    fi
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null || status=$?
    while server_alive "$server_pid"; do sleep 0.05; done
    # Forget it, or cleanup_servers takes its status 137 (bash keeps
    # it) for a failure.
    local entry kept=()
    for entry in "${_servers[@]}"; do
        test "${entry#*:}" = "$server_pid" || kept+=("$entry")
    done
    _servers=("${kept[@]}")
    # 127: not our child (qemu-nbd forked itself away).
    if test "$status" -ne 137 && test "$status" -ne 127; then
        echo "$WRITE_SERVER (pid $server_pid) exited with status $status" \
             "instead of being killed:" >&2
        cat "$server_log" >&2
        return 1
    fi
}

# workload ARGS...: the workload driver, with a time limit.
workload ()
{
    timeout --kill-after=10 300 /usr/bin/python3 "$WORKLOAD" "$@"
}

# guest_view IMAGE RAW: what a guest sees, as a raw file.
guest_view ()
{
    rm -f "$2"
    qemu-img convert -f qcow2 -O raw "$1" "$2"
}

# check_leaks_only IMAGE: `qemu-img check` exit 0 or 3 (leaks only),
# never 2 (corruption) or 1 (check failed).
check_leaks_only ()
{
    local status=0
    qemu-img check "$1" >"$BATS_TEST_TMPDIR/check.out" 2>&1 || status=$?
    if test "$status" -ne 0 && test "$status" -ne 3; then
        echo "qemu-img check $1: exit $status" >&2
        cat "$BATS_TEST_TMPDIR/check.out" >&2
        return 1
    fi
}

# incompatible_bits IMAGE: the header's incompatible feature bits
# (v3 only), as a decimal number.
incompatible_bits ()
{
    od -An -t u8 --endian=big -j 72 -N 8 "$1" | tr -d ' '
}

# image_version IMAGE: 2 or 3.
image_version ()
{
    od -An -t u4 --endian=big -j 4 -N 4 "$1" | tr -d ' '
}

# assert_not_dirty IMAGE: the dirty bit (incompatible bit 0) is clear.
assert_not_dirty ()
{
    test "$(image_version "$1")" -eq 2 && return 0
    local bits
    bits=$(incompatible_bits "$1")
    if ((bits & 1)); then
        echo "$1 is still marked dirty (incompatible features $bits)" >&2
        return 1
    fi
}

# ----------------------------------------------------------------------
# The write matrix (test-qcow2-write-matrix.bats, and the qcow2
# filter's test-qcow2-filter.bats): $img and $ref are the image and its
# reference, set by the caller's setup.

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

# case_many_connections SEED: 4 connections, 64 requests in flight,
# small requests: many allocations in the same L2 tables and refcount
# blocks at once.
case_many_connections ()
{
    local seed
    seed=$(write_seed "$1")
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$img" 32M
    guest_view "$img" "$ref"
    run_workload "$img" 4096 "$seed" --connections 4 --inflight 64 \
        --max-size 20000 --ops 2000
}

# case_data_file SEED [CREATE-OPTIONS]: an image with an external data
# file, $BATS_TEST_TMPDIR/test.data.
case_data_file ()
{
    local data=$BATS_TEST_TMPDIR/test.data seed
    seed=$(write_seed "$1")
    qemu-img create -q -f qcow2 -o data_file="$data"${2:+,$2} "$img" 48M
    prefill "$img" $((48 * 1024 * 1024))
    guest_view "$img" "$ref"
    run_workload "$img" 65536 "$seed"
}
