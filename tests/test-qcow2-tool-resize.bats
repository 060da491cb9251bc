#!/usr/bin/env bats
# qcow2-tool resize with QEMU as the oracle: the virtual size and guest
# data equal what `qemu-img resize` leaves on a copy, for growing (with
# and without moving the L1 table), shrinking and --shrink, across
# cluster sizes, v2 and v3, extended L2, with snapshots and over a
# backing file; a shrink that would drop data is refused without
# --shrink and changes nothing; a kill -9 or an I/O error at every
# write, or a power cut at many points, leaves the old or the new image.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"
load "$BATS_TEST_DIRNAME/tool-edit-functions.bash"

setup ()
{
    setup_tool_edits
}

# resize_like_qemu SIZE [--shrink]: ours on $img, qemu-img on a copy;
# then the same size, the same guest data, `qemu-img check` clean.
resize_like_qemu ()
{
    cp "$img" "$t/qemu.qcow2"
    tool_ok resize ${2:+"$2"} "$img" "$1"
    assert_output "Image resized."
    qemu-img resize -q ${2:+"$2"} "$t/qemu.qcow2" "$1"
    same_guest "$img" "$t/qemu.qcow2"
    check_clean "$img"
}

# grow_and_shrink CREATE-OPTIONS CLUSTER [LARGE]: grow a little (the L1
# table still covers it), to LARGE (default 1G: it moves), shrink with
# --shrink into the data, then grow again (what was cut stays gone).
grow_and_shrink ()
{
    scenario_image "$1" "$2"
    resize_like_qemu +1M
    resize_like_qemu "${3:-1G}"
    resize_like_qemu $((5 * $2 + 1024)) --shrink
    resize_like_qemu +64M
    # Still writable, by QEMU, past the old end.
    qemu-io -c "write -P 0x3c 60M 1M" "$img" >/dev/null
    check_clean "$img"
}

@test "resize: v3, 64 KiB clusters"     { grow_and_shrink compat=1.1 65536; }
# Smaller, as qemu-img takes many seconds to shrink 512-byte clusters;
# then 300M: an L1 table of 150 clusters, more than one allocation's
# most (refcount_max_run).
@test "resize: v3, 512 B clusters" {
    grow_and_shrink compat=1.1 512 16M
    resize_like_qemu 300M
}
@test "resize: v2, 4 KiB clusters"      { grow_and_shrink compat=0.10 4096; }
@test "resize: v3, 2 MiB clusters"      { grow_and_shrink compat=1.1 2097152; }
@test "resize: extended L2, 64 KiB clusters" {
    grow_and_shrink compat=1.1,extended_l2=on 65536
}

@test "resize: relative sizes, and shrinking past no data needs no --shrink" {
    qemu-img create -q -f qcow2 "$img" 64M
    qemu-io -c "write -P 1 0 4M" "$img" >/dev/null
    resize_like_qemu -32M --shrink
    cp "$img" "$t/before.qcow2"
    tool_ok resize "$img" 8M
    assert_equal "$(virtual_size "$img")" 8388608
    qemu-img resize -q --shrink "$t/before.qcow2" 8M
    same_guest "$img" "$t/before.qcow2"
    check_clean "$img"
}

@test "resize: a shrink that drops data is refused without --shrink" {
    qemu-img create -q -f qcow2 "$img" 64M
    qemu-io -c "write -P 1 40M 64k" -c "write -c -P 2 50M 64k" "$img" >/dev/null
    cp "$img" "$t/before.qcow2"
    run "$QCOW2_TOOL" resize "$img" 32M
    assert_failure 1
    assert_output --partial "data is stored at guest offset 41943040"
    assert_output --partial "--shrink"
    cmp "$img" "$t/before.qcow2"
    run "$QCOW2_TOOL" resize "$img" 1000
    assert_failure 1
    assert_output --partial "not a multiple of 512"
    run "$QCOW2_TOOL" resize "$img" -65M
    assert_failure 1
    cmp "$img" "$t/before.qcow2"
    # A compressed cluster is data.
    qemu-img create -q -f qcow2 "$img" 64M
    qemu-io -c "write -c -P 2 50M 64k" "$img" >/dev/null
    run "$QCOW2_TOOL" resize "$img" 32M
    assert_failure 1
    assert_output --partial "data is stored at guest offset 52428800"
    # Zero clusters are not data.
    qemu-img create -q -f qcow2 "$img" 64M
    qemu-io -c "write -z 40M 1M" "$img" >/dev/null
    tool_ok resize "$img" 32M
}

@test "resize: with snapshots, which keep their size and data" {
    scenario_image compat=1.1 65536
    qemu-img convert -O raw "$img" "$t/s1.raw"
    qemu-img snapshot -c s1 "$img"
    resize_like_qemu 1G
    qemu-io -c "write -P 0x5e 900M 1M" "$img" >/dev/null
    resize_like_qemu 2M --shrink
    # (qemu-img convert -l shows a snapshot cut to the current size.)
    cp "$img" "$t/applied.qcow2"
    qemu-img snapshot -a s1 "$t/applied.qcow2"
    qemu-img convert -O raw "$t/applied.qcow2" "$t/now.raw"
    cmp "$t/now.raw" "$t/s1.raw"
    tool_ok snapshot -d s1 "$img"
    check_clean "$img"
}

@test "resize: over a larger backing file the grown part reads as zeroes" {
    qemu-img create -q -f qcow2 "$t/base.qcow2" 32M
    qemu-io -c "write -P 3 0 32M" "$t/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$img" 8M
    qemu-io -c "write -P 4 1M 1M" "$img" >/dev/null
    resize_like_qemu 16M
    resize_like_qemu 64M
    run qemu-io -c "read -P 0 8M 56M" -c "read -P 3 2M 6M" "$img"
    refute_output --partial "verification failed"
    # Version 2 has no zero clusters: zeroes are written (qemu-img fails).
    qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 "$img" 8M
    tool_ok resize "$img" 16M
    run qemu-io -c "read -P 0 8M 8M" -c "read -P 3 0 8M" "$img"
    refute_output --partial "verification failed"
    check_clean "$img"
}

# crash_each_write ARGS...: for every pwrite64 of `qcow2-tool ARGS...`
# (naming $t/crash.qcow2), a copy of $img killed there, and one where
# it fails with EIO, must pass
# check_after_crash and show $t/old.raw or $t/new.raw.
crash_each_write ()
{
    local n i
    cp "$img" "$t/crash.qcow2"
    qemu-img convert -O raw "$img" "$t/old.raw"
    n=$(writes_of "$@")
    ((n > 0))
    qemu-img convert -O raw "$t/crash.qcow2" "$t/new.raw"
    for ((i = 1; i <= 2 * n; i++)); do
        cp "$img" "$t/crash.qcow2"
        if ((i <= n)); then killed_at "$i" "$@"
        else failed_at $((i - n)) "$@"; fi
        check_after_crash "$t/crash.qcow2"
        rm -f "$t/crash.raw"
        qemu-img convert -O raw "$t/crash.qcow2" "$t/crash.raw"
        cmp "$t/crash.raw" "$t/old.raw" || cmp "$t/crash.raw" "$t/new.raw"
    done
    echo "# $n crash points, ${copied_windows:-0} in the copied-flag window" >&3
}

@test "resize: kill -9 or EIO at every write of a grow and of a shrink" {
    requires strace
    scenario_image compat=1.1 4096
    crash_each_write resize "$t/crash.qcow2" 64M
    crash_each_write resize --shrink "$t/crash.qcow2" 40960
}

@test "resize: power cuts at many points of a grow and a shrink" {
    scenario_image compat=1.1 4096
    power_cut_each resize "$t/pc.qcow2" 64M
    power_cut_each resize --shrink "$t/pc.qcow2" 40960
}
