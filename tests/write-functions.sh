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

# start_write_server IMAGE [PLUGIN-ARGS...]: serve IMAGE read-write
# with the server under test.  PLUGIN-ARGS are for our plugin only.
# Sets uri, server_pid, server_log.
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
    *)
        echo "WRITE_SERVER must be nbdkit or qemu-nbd" >&2
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
