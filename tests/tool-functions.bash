# qcow2-tool against qemu-img (tests/test-qcow2-tool-*.bats).
# -*- shell-script -*-  Load after functions.sh.

# Every test skips unless qcow2-tool was built (it needs json-c), and
# has $img to make its image in.
setup ()
{
    requires qemu-img qemu-io python3
    test -x "$QCOW2_TOOL" || skip "qcow2-tool was not built"
    img=$BATS_TEST_TMPDIR/test.qcow2
}

# compare_json SUBCOMMAND IMAGE [ARG...] [-- QEMU_ONLY_KEY...]: run
# `qcow2-tool SUBCOMMAND --output=json ARG... IMAGE` and the same
# qemu-img command, and fail unless every field either prints is equal
# (QEMU_ONLY_KEYs may be missing from ours).
compare_json ()
{
    local cmd=$1 image=$2 t=$BATS_TEST_TMPDIR args=() only=()
    shift 2
    while (($#)) && [[ $1 != -- ]]; do args+=("$1"); shift; done
    (($#)) && shift && only=("$@")
    qemu-img "$cmd" --output=json "${args[@]}" "$image" > "$t/qemu.json"
    run "$QCOW2_TOOL" "$cmd" --output=json "${args[@]}" "$image"
    assert_success
    printf '%s\n' "$output" > "$t/ours.json"
    run python3 "$BATS_TEST_DIRNAME/json-compare.py" "$t/ours.json" \
        "$t/qemu.json" "${only[@]}"
    assert_success
}

# compare_info_map IMAGE: info (with and without --backing-chain) and
# map equal qemu-img's.
compare_info_map ()
{
    compare_json info "$1"
    compare_json info "$1" --backing-chain
    compare_json map "$1"
}

# damaged_image IMAGE KIND [SNAPSHOT]: the image qcow2-damage.py
# expects (version 3, 64 KiB clusters, 16-bit refcounts, data at guest
# 0, 1 MiB and 2 MiB, the host cluster of 64 KiB freed), with an
# internal snapshot when KIND starts with snapshot_, damaged as KIND
# says (a function of qcow2-damage.py).
damaged_image ()
{
    local image=$1 kind=$2
    qemu-img create -q -f qcow2 -o cluster_size=64k "$image" 1G
    qemu-io -f qcow2 -c "write -P 1 0 64k" -c "write -P 2 64k 64k" \
        -c "write -P 3 1M 64k" -c "write -P 4 2M 64k" -c "discard 64k 64k" \
        "$image" >/dev/null
    if [[ $kind == snapshot_* ]]; then
        qemu-img snapshot -c snap "$image"
    fi
    python3 "$BATS_TEST_DIRNAME/qcow2-damage.py" "$image" "$kind"
}

# lazy_dirty_image IMAGE CREATE_OPTIONS QEMU_IO_ARGS...: a writer with
# lazy refcounts killed (qemu-io's abort) after the writes given.
lazy_dirty_image ()
{
    local image=$1 options=$2
    shift 2
    qemu-img create -q -f qcow2 -o "lazy_refcounts=on${options:+,$options}" "$image" 64M
    # abort kills qemu-io by SIGABRT: its status is 134 by design.
    run qemu-io -f qcow2 "$@" -c abort "$image"
    assert_equal "$status" 134
}

# compare_check IMAGE STATUS [OPTION...]: qcow2-tool check and
# qemu-img check (with the same options) both exit with STATUS and
# print the same JSON, and the same problems on stderr (in qemu-img's
# words and order).
compare_check ()
{
    local image=$1 want=$2 t=$BATS_TEST_TMPDIR qemu_status=0 our_status=0
    shift 2
    qemu-img check --output=json "$@" "$image" > "$t/qemu.json" \
        2> "$t/qemu.err" || qemu_status=$?
    "$QCOW2_TOOL" check --output=json "$@" "$image" > "$t/ours.json" \
        2> "$t/ours.err" || our_status=$?
    assert_equal "$qemu_status" "$want"
    assert_equal "$our_status" "$want"
    run python3 "$BATS_TEST_DIRNAME/json-compare.py" "$t/ours.json" "$t/qemu.json"
    assert_success
    # Each problem in qemu-img's words; the last line (qemu-img's "Check
    # failed", and its block layer's own notices) differ.
    run diff -u <(grep -v -e '^qemu-img: ' -e '^qcow2: ' "$t/qemu.err") \
        <(grep -v '^qcow2-tool check: ' "$t/ours.err" | sed 's/^qcow2-tool: //')
    assert_success
}

# compare_repair IMAGE MODE STATUS [AFTER]: `check -r MODE` by
# qcow2-tool on IMAGE and by qemu-img on a copy both exit with STATUS
# and count the same (the image end may differ: qemu-img's rebuild moves
# the refcount structures); after it, qemu-img check of IMAGE exits with
# AFTER (default 0), and the guest data equals the copy's.  A repair
# that fails (STATUS 1) leaves IMAGE as it was.
compare_repair ()
{
    local image=$1 mode=$2 want=$3 after=${4:-0} t=$BATS_TEST_TMPDIR
    local copy=$BATS_TEST_TMPDIR/qemu-repaired.qcow2 before
    local qemu_status=0 our_status=0
    cp "$image" "$copy"
    before=$(md5sum < "$image")
    qemu-img check -r "$mode" --output=json "$copy" > "$t/qemu.json" \
        2>/dev/null || qemu_status=$?
    "$QCOW2_TOOL" check -r "$mode" --output=json "$image" > "$t/ours.json" \
        2> "$t/ours.err" || our_status=$?
    assert_equal "$qemu_status" "$want"
    assert_equal "$our_status" "$want"
    if ((want == 1)); then
        assert_equal "$(md5sum < "$image")" "$before"
        run cat "$t/ours.err"
        assert_line "qcow2-tool check: Check failed"
        return
    fi
    run python3 "$BATS_TEST_DIRNAME/json-compare.py" "$t/ours.json" \
        "$t/qemu.json" --ignore=image-end-offset --ignore=filename
    assert_success
    run qemu-img check "$image"
    assert_equal "$status" "$after"
    run qemu-img compare -f qcow2 -F qcow2 "$image" "$copy"
    assert_success
}

# repair_power_cut IMAGE MODE: run `qcow2-tool check -r MODE IMAGE`
# with io-shim recording its system calls, then check what a power cut
# at many points of it leaves (repair-power-cut.py).
repair_power_cut ()
{
    local image=$1 mode=$2 t=$BATS_TEST_TMPDIR
    cp "$image" "$t/initial.qcow2"
    cp "$image" "$t/qemu-repaired.qcow2"
    qemu-img check -q -r all "$t/qemu-repaired.qcow2" >/dev/null 2>&1 || :
    qemu-img convert -O raw "$t/qemu-repaired.qcow2" "$t/reference.raw"
    requires_io_shim
    # The shim appends: a journal per run.
    rm -rf "$t/journal" "$t/scratch"
    LD_PRELOAD=$(shim_preload) IO_SHIM_FILES=$(realpath "$image") \
        IO_SHIM_JOURNAL=$t/journal "$QCOW2_TOOL" check -r "$mode" "$image" \
        >/dev/null 2>&1 || :
    mkdir -p "$t/scratch"
    run python3 "$BATS_TEST_DIRNAME/repair-power-cut.py" "$mode" \
        "$t/journal" "$t/initial.qcow2" "$t/reference.raw" "$t/scratch"
    assert_success
    assert_output --regexp '[0-9]+ cuts, 0 failed'
}
