#!/usr/bin/env bats
# qcow2-tool commit with QEMU as the oracle: the backing file afterwards
# shows the guest what `qemu-img commit` leaves in it on a copy, and so
# does the emptied image, for qcow2 and raw backing files and 2- and
# 3-deep chains; a kill -9 or an I/O error at every write changes
# nothing the image shows.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"
load "$BATS_TEST_DIRNAME/tool-edit-functions.bash"

setup ()
{
    setup_tool_edits
    mkdir "$t/ours" "$t/qemu"
}

# overlay_writes IMAGE CLUSTER: data over parts of clusters, zeroes,
# a discard, compressed data, and the last bytes.
overlay_writes ()
{
    local c=$2
    qemu-io -c "write -P 0xd1 $((c / 2)) $((2 * c))" \
            -c "write -z $((4 * c)) $c" \
            -c "write -P 0xd2 $((6 * c)) $c" -c "discard $((6 * c)) $c" \
            -c "write -c -P 0xd3 $((8 * c)) $c" \
            -c "write -P 0xd4 $((32 * 1024 * 1024 - 512)) 512" "$1" >/dev/null
}

# chain BASE-FORMAT CREATE-OPTIONS CLUSTER DEPTH: in $t/ours, base (32
# MiB of data) <- [mid <-] top, each layer written; copied to $t/qemu.
chain ()
{
    local fmt=$1 opts=$2 c=$3 depth=$4 below
    qemu-img create -q -f "$fmt" "$t/ours/base.$fmt" 32M
    qemu-io -f "$fmt" -c "write -P 0x0b 0 32M" "$t/ours/base.$fmt" >/dev/null
    below=base.$fmt
    if ((depth == 3)); then
        qemu-img create -q -f qcow2 -o "$opts",cluster_size="$c" \
            -b "$below" -F "$fmt" "$t/ours/mid.qcow2"
        qemu-io -c "write -P 0x3d $((3 * c)) $((4 * c))" "$t/ours/mid.qcow2" >/dev/null
        below=mid.qcow2 fmt=qcow2
    fi
    qemu-img create -q -f qcow2 -o "$opts",cluster_size="$c" \
        -b "$below" -F "$fmt" "$t/ours/top.qcow2"
    overlay_writes "$t/ours/top.qcow2" "$c"
    cp "$t/ours/"* "$t/qemu/"
}

# commit_like_qemu BELOW: commit top in both directories; BELOW (the
# file committed into) and top then show the same guest data, both
# pass qemu-img check, and whatever lies further down is untouched.
commit_like_qemu ()
{
    local below=$1 fmt=qcow2
    [[ $below == *.raw ]] && fmt=raw
    qemu-img convert -O raw "$t/ours/top.qcow2" "$t/before.raw"
    tool_ok commit "$t/ours/top.qcow2"
    assert_output "Image committed."
    qemu-img commit -q "$t/qemu/top.qcow2"
    run qemu-img compare -f "$fmt" -F "$fmt" "$t/ours/$below" "$t/qemu/$below"
    assert_success
    same_guest "$t/ours/top.qcow2" "$t/qemu/top.qcow2"
    qemu-img convert -O raw "$t/ours/top.qcow2" "$t/after.raw"
    cmp "$t/before.raw" "$t/after.raw"
    check_clean "$t/ours/top.qcow2"
    if test "$fmt" = qcow2; then check_clean "$t/ours/$below"; fi
    # Emptied: nothing allocated in top any more.
    run qemu-img map --output=json "$t/ours/top.qcow2"
    refute_output --partial '"depth": 0'
}

@test "commit: 2-deep, qcow2 backing, 64 KiB clusters" {
    chain qcow2 compat=1.1 65536 2
    commit_like_qemu base.qcow2
}

@test "commit: 2-deep, raw backing, 4 KiB clusters" {
    chain raw compat=1.1 4096 2
    commit_like_qemu base.raw
}

@test "commit: 2-deep, v2 image, 512 B clusters" {
    chain qcow2 compat=0.10 512 2
    commit_like_qemu base.qcow2
}

@test "commit: 2-deep, extended L2" {
    chain qcow2 compat=1.1,extended_l2=on 65536 2
    commit_like_qemu base.qcow2
}

@test "commit: 3-deep: into the middle image only" {
    chain qcow2 compat=1.1 65536 3
    cp "$t/ours/base.qcow2" "$t/base-before.qcow2"
    commit_like_qemu mid.qcow2
    cmp "$t/ours/base.qcow2" "$t/base-before.qcow2"
}

@test "commit: 3-deep over raw, twice: top into mid, then mid into base" {
    chain raw compat=1.1 65536 3
    commit_like_qemu mid.qcow2
    tool_ok commit "$t/ours/mid.qcow2"
    qemu-img commit -q "$t/qemu/mid.qcow2"
    run qemu-img compare -f raw -F raw "$t/ours/base.raw" "$t/qemu/base.raw"
    assert_success
    same_guest "$t/ours/top.qcow2" "$t/qemu/top.qcow2"
}

@test "commit: refused without a backing file, or over a smaller one" {
    qemu-img create -q -f qcow2 "$img" 4M
    run "$QCOW2_TOOL" commit "$img"
    assert_failure 1
    assert_output --partial "has no backing file"
    qemu-img create -q -f qcow2 "$t/ours/base.qcow2" 4M
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$t/ours/top.qcow2" 8M
    qemu-io -c "write -P 1 6M 1M" "$t/ours/top.qcow2" >/dev/null
    cp "$t/ours/"* "$t/qemu/"
    run "$QCOW2_TOOL" commit "$t/ours/top.qcow2"
    assert_failure 1
    assert_output --partial "smaller than the image"
    cmp "$t/ours/top.qcow2" "$t/qemu/top.qcow2"
    cmp "$t/ours/base.qcow2" "$t/qemu/base.qcow2"
}

@test "commit: kill -9 or EIO at every write: top always shows the same data" {
    requires strace
    chain qcow2 compat=1.1 4096 2
    qemu-img convert -O raw "$t/ours/top.qcow2" "$t/before.raw"
    mkdir "$t/crash"
    n=$(cd "$t/crash" && cp "$t/ours/"* . && writes_of commit top.qcow2)
    ((n > 0))
    for ((i = 1; i <= 2 * n; i++)); do
        cp "$t/ours/"* "$t/crash/"
        if ((i <= n)); then killed_at "$i" commit "$t/crash/top.qcow2"
        else failed_at $((i - n)) commit "$t/crash/top.qcow2"; fi
        check_after_crash "$t/crash/top.qcow2"
        check_after_crash "$t/crash/base.qcow2"
        rm -f "$t/crash.raw"
        qemu-img convert -O raw "$t/crash/top.qcow2" "$t/crash.raw"
        cmp "$t/crash.raw" "$t/before.raw"
    done
    echo "# $n crash points" >&3
}
