#!/usr/bin/env bats
# Running out of space: the image lives on a 20 MiB tmpfs and the
# random workload writes until a request fails.  The failure must reach
# the client as ENOSPC; a flush afterwards must still succeed; then,
# with the server stopped, `qemu-img check` may find leaks but no
# corruption, and every request acknowledged before the error reads
# back (the ones that failed may have written all, part or none of
# their data).  After space is freed the image takes writes again.
#
# The tmpfs is mounted here as root; otherwise (or with
# WRITE_ENOSPC_USERNS=1) in a user and mount namespace of the test's own
# (unshare -Urm, no privilege needed), held by a sleeping process, and
# every command that touches the image (nbdkit, qemu-img, qemu-io,
# qemu-nbd) runs in that namespace (nsenter).  Only where neither works
# is the test skipped, and under CI it fails instead.
# WRITE_SERVER=qemu-nbd runs it against qemu-nbd.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/write-functions.sh"

setup ()
{
    requires qemu-img qemu-io qemu-nbd nbdinfo
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    mnt=$BATS_TEST_TMPDIR/mnt
    mkdir -p "$mnt"
    if ! mount_small_fs "$mnt"; then
        test -z "${CI:-}" || fail "cannot mount a tmpfs, not even in a user namespace"
        skip "cannot mount a tmpfs, not even in a user namespace"
    fi
    img=$mnt/test.qcow2
    ref=$BATS_TEST_TMPDIR/ref.raw
    after=$BATS_TEST_TMPDIR/after.raw
}

# mount_small_fs DIR: a 20 MiB tmpfs at DIR.
mount_small_fs ()
{
    local dir=$1 ready=$BATS_TEST_TMPDIR/fs-ready i
    if test -z "${WRITE_ENOSPC_USERNS:-}" &&
       mount -t tmpfs -o size=20M tmpfs "$dir" 2>/dev/null; then
        mounted=$dir
        return 0
    fi
    command -v unshare >/dev/null && command -v nsenter >/dev/null || return 1
    # The holder execs sleep in the new namespaces; fd 3 is bats' own.
    unshare -Urm sh -c 'mount -t tmpfs -o size=20M tmpfs "$1" && touch "$2" &&
                        exec sleep 3600' sh "$dir" "$ready" \
        </dev/null >/dev/null 2>&1 3>&- &
    fs_holder=$!
    for ((i = 0; i < 100; i++)); do
        test -e "$ready" && break
        kill -0 "$fs_holder" 2>/dev/null || return 1
        sleep 0.1
    done
    test -e "$ready" || return 1
    # nbdkit is started through env by functions.sh: give it a wrapper.
    printf '#!/bin/sh\nexec nsenter -t %s -U -m --preserve-credentials -- %s "$@"\n' \
        "$fs_holder" "$(command -v "$NBDKIT")" > "$BATS_TEST_TMPDIR/nbdkit-in-fs"
    chmod +x "$BATS_TEST_TMPDIR/nbdkit-in-fs"
    NBDKIT=$BATS_TEST_TMPDIR/nbdkit-in-fs
    in_small_fs test -d "$dir"
}

# in_small_fs CMD...: CMD where the small file system is mounted.
in_small_fs ()
{
    if test -n "${fs_holder:-}"; then
        nsenter -t "$fs_holder" -U -m --preserve-credentials -- "$@"
    else
        command "$@"
    fi
}
qemu-img () { in_small_fs qemu-img "$@"; }
qemu-io () { in_small_fs qemu-io "$@"; }
qemu-nbd () { in_small_fs qemu-nbd "$@"; }

teardown ()
{
    local status=0
    cleanup_servers || status=$?
    if test -n "${mounted:-}"; then
        umount "$mounted" || umount -l "$mounted"
    fi
    if test -n "${fs_holder:-}"; then
        kill "$fs_holder" 2>/dev/null || true
        wait "$fs_holder" 2>/dev/null || true
    fi
    return "$status"
}

# fill_up CREATE-OPTIONS SEED [BACKING]: the scenario described above.
fill_up ()
{
    local opts=$1 seed backing=${3:-} backing_raw= extra=()
    seed=$(write_seed "$2")
    # room to give back once the disk is full
    in_small_fs dd if=/dev/zero of="$mnt/filler" bs=1M count=3 status=none

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
    in_small_fs rm "$mnt/filler"
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
