#!/usr/bin/env bats
# Crash safety of the write path: the random workload runs against the
# server, which is killed with SIGKILL at a random moment, many rounds
# in a row on the same image.  After every crash:
#
#  - `qemu-img check` may report leaked clusters (exit 3) but never
#    corruption (exit 2);
#  - every byte holds either its value as of the last flush that
#    completed, or a value written to it by a request after that flush
#    (or still unanswered), or - for a trim - zero or the old content
#    (write-workload.py verify; the driver records that model);
#  - with lazy refcounts the image may be left dirty with refcounts too
#    low, so it is checked after the server under test has reopened it
#    read-write, which must repair it: `qemu-img check` then exits 0.
#
# qemu-nbd 7.2 breaks the second rule in one way, which the test lets
# pass for it alone (write-workload.py verify --allow-freed-reuse): a
# host cluster freed by a trim or zero is handed to a later write
# before the L2 entry that dropped it is on disk, so after a crash the
# trimmed guest cluster shows another cluster's data.
#
# WRITE_SERVER=qemu-nbd runs the same rounds against qemu-nbd;
# WRITE_CRASH_ROUNDS=N changes the number of rounds (default 10, and 5
# for the last two cases).

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/write-functions.sh"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    img=$BATS_TEST_TMPDIR/test.qcow2
    ref=$BATS_TEST_TMPDIR/ref.raw
    after=$BATS_TEST_TMPDIR/after.raw
}

# reopen_rw IMG: open IMG read-write with the server under test, talk to
# it, close it cleanly.  (Our plugin opens the image at start-up; this
# is where a dirty image gets repaired.)
reopen_rw ()
{
    if test "$WRITE_SERVER" = qemu-nbd; then
        # qemu-nbd --fork fails when the child prints anything, and the
        # repair does; QEMU's repair-on-open is the same in qemu-io.
        qemu-io -f qcow2 -c flush "$1"
        return
    fi
    start_write_server "$1"
    /usr/bin/python3 -c '
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.flush()
h.shutdown()' "$uri"
    stop_write_server
}

# crash_rounds CREATE-OPTIONS SEED: the rounds described above.
crash_rounds ()
{
    local opts=$1 seed0 rounds=${WRITE_CRASH_ROUNDS:-10} r seed delay lazy=0
    seed0=$(write_seed "$2")
    [[ "$opts" == *lazy_refcounts=on* ]] && lazy=1
    local verify_args=() dirty_rounds=0

    qemu-img create -q -f qcow2 -o "$opts" "$img" 32M
    qemu-io -f qcow2 -c "write -P 0x5a 0 4M" -c "write -z 8M 1M" \
        "$img" >/dev/null
    guest_view "$img" "$ref"
    if test "$WRITE_SERVER" = qemu-nbd; then
        verify_args=(--allow-freed-reuse "$(cluster_size_of "$img")")
    fi

    for ((r = 1; r <= rounds; r++)); do
        seed=$((seed0 * 1000 + r))
        # between 0.3 and 2.3 s into the run
        delay=$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (r % 200) / 100 }')
        echo "round $r: seed $seed, kill after $delay s" >&2
        rm -rf "$BATS_TEST_TMPDIR/state" "$BATS_TEST_TMPDIR/ready"

        start_write_server "$img"
        workload run --uri "$uri" --reference "$ref" --seed "$seed" \
            --ops 1000000 --time-limit 30 --inflight 16 \
            --state "$BATS_TEST_TMPDIR/state" --expect-crash \
            --ready-file "$BATS_TEST_TMPDIR/ready" &
        local wl=$! i
        for ((i = 0; i < 300; i++)); do
            test -e "$BATS_TEST_TMPDIR/ready" && break
            sleep 0.1
        done
        test -e "$BATS_TEST_TMPDIR/ready" || fail "the workload did not start"
        sleep "$delay"
        # (fails if the server had died by itself before the kill)
        kill_write_server
        wait "$wl"

        if ((lazy)); then
            (($(incompatible_bits "$img") & 1)) && ((++dirty_rounds))
            # Read-only views of a dirty image are fine; the refcounts
            # are only trustworthy after a read-write open repaired them.
            guest_view "$img" "$after"
            workload verify --state "$BATS_TEST_TMPDIR/state" --image "$after" \
                "${verify_args[@]}"
            reopen_rw "$img"
            check_clean "$img"
            assert_not_dirty "$img"
            # the repair must not change the guest view
            qemu-img compare -f qcow2 -F raw "$img" "$after"
        else
            check_leaks_only "$img"
            guest_view "$img" "$after"
            workload verify --state "$BATS_TEST_TMPDIR/state" --image "$after" \
                "${verify_args[@]}"
        fi
        # the next round starts from what survived
        mv "$after" "$ref"
    done

    # Lazy refcounts were really in play: a crash left the image dirty.
    if ((lazy)); then
        echo "$dirty_rounds of $rounds crashes left the image dirty" >&2
        ((dirty_rounds > 0))
    fi

    # Finally the image (leaks and all) still takes a clean workload.
    start_write_server "$img"
    workload run --uri "$uri" --reference "$ref" --seed "$seed0" --ops 100
    stop_write_server
    check_leaks_only "$img"
    qemu-img compare -f qcow2 -F raw "$img" "$ref"
}

@test "write crash: kill -9 at random moments, v3 image" {
    crash_rounds compat=1.1 1
}

@test "write crash: kill -9 at random moments, lazy refcounts" {
    crash_rounds compat=1.1,lazy_refcounts=on 2
}

@test "write crash: kill -9 at random moments, v2, 4 KiB clusters" {
    WRITE_CRASH_ROUNDS=${WRITE_CRASH_ROUNDS:-5} crash_rounds compat=0.10,cluster_size=4096 3
}

@test "write crash: kill -9 at random moments, extended L2, refcount_bits=1" {
    WRITE_CRASH_ROUNDS=${WRITE_CRASH_ROUNDS:-5} crash_rounds extended_l2=on,refcount_bits=1 4
}
