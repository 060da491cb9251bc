# Hostile images made by tests/make-bad-images.py, and the verdicts
# expected for them (test-qcow2-bad-images.bats, and a sample through
# the qcow2 filter in test-qcow2-filter.bats).   -*- shell-script -*-
# Load after functions.sh.  Our side is served as QCOW2_VIA says
# (plugin or filter-file: see ours_args in functions.sh).

# make_bad_images DIR: good images made by qemu-img (GOOD_V3,
# GOOD_EXTL2, GOOD_V2, and the guest views GOOD_V3_RAW and
# GOOD_EXTL2_RAW) and DIR/bad/NAME.qcow2 (BAD), each spoiled in one
# field; their names go to DIR/bad-images.list.
make_bad_images ()
{
    local d=$1
    export GOOD_V3=$d/good-v3.qcow2 GOOD_EXTL2=$d/good-extl2.qcow2
    export GOOD_V2=$d/good-v2.qcow2 BAD=$d/bad

    # The layout make-bad-images.py expects (see its header).
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$GOOD_V3" 8M
    qemu-io -f qcow2 -c "write -P 0x11 0 8k" -c "write -P 0x22 64k 4k" \
        -c "write -P 0x33 2M 8k" -c "write -P 0x44 4M 4k" "$GOOD_V3" >/dev/null
    qemu-img create -q -f qcow2 -o cluster_size=65536,extended_l2=on \
        "$GOOD_EXTL2" 8M
    qemu-io -f qcow2 -c "write -P 0x55 0 128k" "$GOOD_EXTL2" >/dev/null
    qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 "$GOOD_V2" 8M
    qemu-io -f qcow2 -c "write -P 0x66 0 64k" "$GOOD_V2" >/dev/null

    export GOOD_V3_RAW=$d/good-v3.raw GOOD_EXTL2_RAW=$d/good-extl2.raw
    qemu-img convert -O raw "$GOOD_V3" "$GOOD_V3_RAW"
    qemu-img convert -O raw "$GOOD_EXTL2" "$GOOD_EXTL2_RAW"

    /usr/bin/python3 "$TESTS_SRCDIR/make-bad-images.py" \
        "$GOOD_V3" "$GOOD_EXTL2" "$GOOD_V2" "$BAD" >"$d/bad-images.list"
}

# refused_at_open NAME REGEX: nbdkit, read-only and read-write, exits
# non-zero at start-up (not by a signal, not by the timeout) with an
# error matching REGEX, and leaves the file as it was.
refused_at_open ()
{
    local img=$BAD/$1.qcow2 regex=$2 mode
    cp "$img" "$BATS_TEST_TMPDIR/orig"
    for mode in -r ""; do
        echo "nbdkit ${mode:-(read-write)}:"
        ours_args "$img" || return 1
        # shellcheck disable=SC2086
        assert_startup_refused "$regex" $mode "${ours_args[@]}" || return 1
    done
    cmp "$img" "$BATS_TEST_TMPDIR/orig"
}

# read_fails NAME BAD_OFFSET GOOD_OFFSET GOOD_RAW REGEX: the server
# starts; reading 4 KiB at BAD_OFFSET fails, and so does block status
# over it (assert_read_fails --map).
read_fails ()
{
    local name=$1; shift
    assert_read_fails --map "$BAD/$name.qcow2" "$@"
}

# read_fails_payload NAME ...: the same for a well-formed entry whose
# data is bad: block status does not read the data, and succeeds.
read_fails_payload ()
{
    local name=$1; shift
    assert_read_fails "$BAD/$name.qcow2" "$@"
}

# Where each kind of bad entry is (make-bad-images.py): guest 2 MiB is
# mapped by L1[1], guest 64 KiB by the spoiled L2 entry; guest 0 stays
# readable.
read_fails_l1 () { read_fails "$1" $((2 * 1024 * 1024)) 0 "$GOOD_V3_RAW" "$2"; }
read_fails_l2 () { read_fails "$1" 65536 0 "$GOOD_V3_RAW" "$2"; }
read_fails_extl2 () { read_fails "$1" "$2" 0 "$GOOD_EXTL2_RAW" "$3"; }
