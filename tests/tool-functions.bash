# qcow2-tool against qemu-img (tests/test-qcow2-tool-*.bats).
# -*- shell-script -*-  Load after functions.sh.

# requires_tool: skip unless qcow2-tool was built (it needs json-c).
requires_tool ()
{
    requires qemu-img qemu-io python3
    test -x "$QCOW2_TOOL" || skip "qcow2-tool was not built"
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
