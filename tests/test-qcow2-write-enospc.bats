#!/usr/bin/env bats
# Running out of space: the image lives on a 20 MiB tmpfs and the
# random workload writes until a request fails.  The failure must reach
# the client as ENOSPC; a flush afterwards must still succeed; then,
# with the server stopped, `qemu-img check` may find leaks but no
# corruption, and every request acknowledged before the error reads
# back (the ones that failed may have written all, part or none of
# their data).  After space is freed the image takes writes again.
#
# Needs root (mount -t tmpfs); skipped otherwise.  WRITE_SERVER=qemu-nbd
# runs it against qemu-nbd.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/write-functions.sh"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    mnt=$BATS_TEST_TMPDIR/mnt
    mkdir -p "$mnt"
    mount -t tmpfs -o size=20M tmpfs "$mnt" 2>/dev/null ||
        skip "cannot mount a tmpfs here (not root?)"
    mounted=1
    img=$mnt/test.qcow2
    ref=$BATS_TEST_TMPDIR/ref.raw
    after=$BATS_TEST_TMPDIR/after.raw
}

teardown ()
{
    local status=0
    cleanup_servers || status=$?
    if test -n "${mounted:-}"; then
        umount "$mnt" || umount -l "$mnt"
    fi
    return "$status"
}

# fill_up CREATE-OPTIONS SEED [BACKING]: the scenario described above.
fill_up ()
{
    local opts=$1 seed backing=${3:-} backing_raw= extra=()
    seed=$(write_seed "$2")
    # room to give back once the disk is full
    head -c 3M /dev/zero > "$mnt/filler"

    if test -n "$backing"; then
        # the backing file lives outside the small filesystem
        local base=$BATS_TEST_TMPDIR/base.qcow2
        backing_raw=$BATS_TEST_TMPDIR/base.raw
        qemu-img create -q -f qcow2 "$base" 128M
        qemu-io -f qcow2 -c "write -P 0x5a 0 6M" -c "write -P 0xa5 60M 3M" \
            "$base" >/dev/null
        guest_view "$base" "$backing_raw"
        qemu-img create -q -f qcow2 -b "$base" -F qcow2 -o "$opts" "$img" 128M
        extra=(--backing "$backing_raw")
    else
        qemu-img create -q -f qcow2 -o "$opts" "$img" 128M
    fi
    qemu-io -f qcow2 -c "write -P 0x11 1M 2M" "$img" >/dev/null
    guest_view "$img" "$ref"

    start_write_server "$img"
    workload run --uri "$uri" --reference "$ref" --seed "$seed" \
        --ops 100000 --without trim --inflight 8 \
        --state "$BATS_TEST_TMPDIR/state" --expect-errno ENOSPC "${extra[@]}"
    stop_write_server

    check_leaks_only "$img"
    guest_view "$img" "$after"
    workload verify --state "$BATS_TEST_TMPDIR/state" --image "$after" \
        "${extra[@]}"

    # Space again: the image is still usable.  (A short workload of
    # small requests: it needs far less than the space given back.)
    rm "$mnt/filler"
    mv "$after" "$ref"
    start_write_server "$img"
    workload run --uri "$uri" --reference "$ref" --seed "$((seed + 1))" \
        --ops 40 --without trim --without zero --without fastzero \
        --max-size 65536 "${extra[@]}"
    stop_write_server
    check_leaks_only "$img"
    qemu-img compare -f qcow2 -F raw "$img" "$ref"
}

@test "write enospc: v3, 64 KiB clusters" {
    fill_up compat=1.1 1
}

@test "write enospc: lazy refcounts" {
    fill_up compat=1.1,lazy_refcounts=on 2
}

@test "write enospc: v2, 4 KiB clusters" {
    fill_up compat=0.10,cluster_size=4096 3
}

@test "write enospc: backing file, extended L2" {
    fill_up compat=1.1,extended_l2=on 4 backing
}
