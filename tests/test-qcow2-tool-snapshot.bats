#!/usr/bin/env bats
# qcow2-tool snapshot (-l, -c, -d, -a) with QEMU as the oracle: what we
# create, qemu-img lists and reads back as the guest data of the moment
# of creation, before and after later writes (QEMU's, and our plugin's,
# which must copy shared clusters); deleting leaves `qemu-img check`
# clean (no leaks); applying equals `qemu-img snapshot -a` on a copy;
# our plugin serves the snapshot (snapshot=); and a kill -9 or an I/O
# error at any write of a create, a delete or an apply, or a power cut
# at many points of a create or a delete (repair-power-cut.py's disk
# model), leaves the old or the new image.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"
load "$BATS_TEST_DIRNAME/tool-edit-functions.bash"

setup ()
{
    setup_tool_edits
}

# later_writes IMAGE CLUSTER: overwrite parts of what a snapshot holds
# (data, compressed and zero clusters, partly), and new space.
later_writes ()
{
    local c=$2
    qemu-io -c "write -P 0xa1 $((c / 2)) $c" \
            -c "write -P 0xa2 $((18 * c)) 512" \
            -c "write -z $((3 * c)) $c" \
            -c "write -P 0xa3 $((6 * c)) $((c + 512))" \
            -c "discard $((14 * c)) $c" "$1" >/dev/null
}

# create_and_verify CREATE-OPTIONS CLUSTER
create_and_verify ()
{
    scenario_image "$1" "$2"
    qemu-img convert -O raw "$img" "$t/at-creation.raw"
    tool_ok snapshot -c first "$img"
    run qemu-img snapshot -l "$img"
    assert_success
    assert_line --regexp '^1 +first +0 B '
    check_clean "$img"
    snapshot_raw "$img" first "$t/sn.raw"
    cmp "$t/sn.raw" "$t/at-creation.raw"
    # The active image is unchanged by the snapshot...
    qemu-img convert -O raw "$img" "$t/active.raw"
    cmp "$t/active.raw" "$t/at-creation.raw"
    # ...and writes to it leave the snapshot alone.
    cp "$img" "$t/twin.qcow2"
    later_writes "$img" "$2"
    check_clean "$img"
    snapshot_raw "$img" first "$t/sn.raw"
    cmp "$t/sn.raw" "$t/at-creation.raw"
    qemu-img convert -O raw "$img" "$t/active.raw"
    qemu-img snapshot -a first "$t/twin.qcow2"
    later_writes "$t/twin.qcow2" "$2"
    qemu-img convert -O raw "$t/twin.qcow2" "$t/twin.raw"
    cmp "$t/active.raw" "$t/twin.raw"
}

@test "snapshot -c: v3, 64 KiB clusters" { create_and_verify compat=1.1 65536; }
@test "snapshot -c: v2, 4 KiB clusters"  { create_and_verify compat=0.10 4096; }
@test "snapshot -c: v3, 512 B clusters, 4-bit refcounts" {
    create_and_verify compat=1.1,refcount_bits=4 512
}
@test "snapshot -c: extended L2, 64 KiB clusters" {
    create_and_verify compat=1.1,extended_l2=on 65536
}

@test "snapshot -c: our plugin copies shared clusters on write, and serves the snapshot" {
    requires nbdsh nbdinfo qemu-nbd
    scenario_image compat=1.1 65536
    qemu-img convert -O raw "$img" "$t/at-creation.raw"
    tool_ok snapshot -c first "$img"
    start_ours "$img"
    qemu-io -f raw -c "write -P 0xb1 4096 131072" -c "write -P 0xb2 1179648 65536" \
        "$uri" >/dev/null
    cleanup_servers
    check_clean "$img"
    snapshot_raw "$img" first "$t/sn.raw"
    cmp "$t/sn.raw" "$t/at-creation.raw"
    run qemu-io -c "read -P 0xb1 4096 131072" -c "read -P 0xb2 1179648 65536" "$img"
    assert_success
    refute_output --partial "Pattern verification failed"
    check_snapshot "$img" first
}

@test "snapshot -l lists what qemu-img created, in qemu-img's format" {
    scenario_image compat=1.1 65536
    qemu-img snapshot -c one "$img"
    qemu-img snapshot -c two "$img"
    qemu-img snapshot -l "$img" > "$t/qemu.out"
    run "$QCOW2_TOOL" snapshot -l "$img"
    assert_success
    assert_output "$(cat "$t/qemu.out")"
}

@test "snapshot -d: no leaks, in any order; the others keep their data" {
    scenario_image compat=1.1 4096
    for n in 1 2 3; do
        qemu-io -c "write -P 0x$n$n $((n * 8192)) 8192" "$img" >/dev/null
        tool_ok snapshot -c "s$n" "$img"
        snapshot_raw "$img" "s$n" "$t/s$n.raw"
    done
    qemu-io -c "write -P 0x44 0 65536" "$img" >/dev/null
    qemu-img convert -O raw "$img" "$t/active.raw"
    tool_ok snapshot -d s2 "$img"
    check_clean "$img"
    run qemu-img snapshot -l "$img"
    refute_output --partial s2
    for n in 1 3; do
        snapshot_raw "$img" "s$n" "$t/now.raw"
        cmp "$t/now.raw" "$t/s$n.raw"
    done
    tool_ok snapshot -d s3 "$img"
    check_clean "$img"
    tool_ok snapshot -d s1 "$img"
    check_clean "$img"
    qemu-img convert -O raw "$img" "$t/now.raw"
    cmp "$t/now.raw" "$t/active.raw"
    # No snapshot left: a table offset of 0, as QEMU leaves it.
    assert_equal "$(od -An -t u4 --endian=big -j 60 -N 4 "$img" | tr -d ' ')" 0
    assert_equal "$(od -An -t u8 --endian=big -j 64 -N 8 "$img" | tr -d ' ')" 0
    # The active clusters are the image's alone again: written in place.
    check_clean "$img"
}

@test "snapshot -d/-c interoperate with qemu-img's" {
    scenario_image compat=1.1 65536
    qemu-img snapshot -c theirs "$img"
    tool_ok snapshot -c ours "$img"
    qemu-io -c "write -P 0x5a 0 131072" "$img" >/dev/null
    snapshot_raw "$img" ours "$t/ours.raw"
    tool_ok snapshot -d theirs "$img"
    check_clean "$img"
    run qemu-img snapshot -d ours "$img"
    assert_success
    check_clean "$img"
    run qemu-img snapshot -l "$img"
    assert_output ""
    run "$QCOW2_TOOL" snapshot -l "$img"
    assert_success
    assert_output ""
}

@test "snapshot -a equals qemu-img snapshot -a, by name and by ID, across a resize" {
    scenario_image compat=1.1 65536
    tool_ok snapshot -c before "$img"
    later_writes "$img" 65536
    qemu-img resize -q "$img" 20M
    qemu-io -c "write -P 0x7e 18M 1M" "$img" >/dev/null
    tool_ok snapshot -c after "$img"
    qemu-io -c "write -P 0x7f 0 1M" "$img" >/dev/null
    for sn in before 2 after; do
        cp "$img" "$t/ours.qcow2"
        cp "$img" "$t/qemu.qcow2"
        tool_ok snapshot -a "$sn" "$t/ours.qcow2"
        qemu-img snapshot -a "$sn" "$t/qemu.qcow2"
        same_guest "$t/ours.qcow2" "$t/qemu.qcow2"
        check_clean "$t/ours.qcow2"
        # Writes after the apply copy the clusters the snapshot shares.
        qemu-io -c "write -P 0x12 0 1M" "$t/ours.qcow2" >/dev/null
        qemu-io -c "write -P 0x12 0 1M" "$t/qemu.qcow2" >/dev/null
        same_guest "$t/ours.qcow2" "$t/qemu.qcow2"
        check_clean "$t/ours.qcow2"
        snapshot_raw "$t/ours.qcow2" "$sn" "$t/a.raw" 2>/dev/null ||
            snapshot_raw "$t/ours.qcow2" after "$t/a.raw"
        snapshot_raw "$t/qemu.qcow2" "$sn" "$t/b.raw" 2>/dev/null ||
            snapshot_raw "$t/qemu.qcow2" after "$t/b.raw"
        cmp "$t/a.raw" "$t/b.raw"
    done
}

@test "snapshot: refusals change nothing" {
    qemu-img create -q -f qcow2 -o refcount_bits=1 "$img" 4M
    qemu-io -c "write -P 1 0 1M" "$img" >/dev/null
    cp "$img" "$t/before.qcow2"
    run "$QCOW2_TOOL" snapshot -c s "$img"
    assert_failure 1
    assert_output --partial "refcounts of more than 1 bit"
    cmp "$img" "$t/before.qcow2"

    # 2-bit refcounts hold 3 references: the active image and two
    # snapshots.
    qemu-img create -q -f qcow2 -o refcount_bits=2 "$img" 4M
    qemu-io -c "write -P 1 0 1M" "$img" >/dev/null
    tool_ok snapshot -c s1 "$img"
    tool_ok snapshot -c s2 "$img"
    cp "$img" "$t/before.qcow2"
    run "$QCOW2_TOOL" snapshot -c s3 "$img"
    assert_failure 1
    assert_output --partial "already has the most references 2-bit refcounts hold (3)"
    cmp "$img" "$t/before.qcow2"

    qemu-img create -q -f qcow2 "$img" 4M
    qemu-img snapshot -c s "$img"
    cp "$img" "$t/before.qcow2"
    run "$QCOW2_TOOL" snapshot -d nosuch "$img"
    assert_failure 1
    assert_output --partial "nosuch not found"
    run "$QCOW2_TOOL" snapshot -a nosuch "$img"
    assert_failure 1
    # -d takes names only, as qemu-img.
    run "$QCOW2_TOOL" snapshot -d 1 "$img"
    assert_failure 1
    run "$QCOW2_TOOL" snapshot -c "$(printf '%0256d' 0)" "$img"
    assert_failure 1
    assert_output --partial "1 to 255 bytes"
    run "$QCOW2_TOOL" snapshot -c a -d s "$img"
    assert_failure 1
    cmp "$img" "$t/before.qcow2"

    qemu-img create -q -f qcow2 -o data_file="$t/data.raw" "$img" 4M
    run "$QCOW2_TOOL" snapshot -c s "$img"
    assert_failure 1
    assert_output --partial "external data file"
}

# crash_each_write OLD-RAW NEW-RAW ARGS...: for every pwrite64 that
# `qcow2-tool ARGS... $t/crash.qcow2` makes, a copy of $img killed
# there, and one where it fails with EIO; each must pass
# check_after_crash and show the old or the new
# guest data and snapshot list (snapshots named in $sn_names, each
# holding $t/SN.raw).
crash_each_write ()
{
    local old=$1 new=$2 n i; shift 2
    cp "$img" "$t/crash.qcow2"
    n=$(writes_of "$@" "$t/crash.qcow2")
    ((n > 0))
    for ((i = 1; i <= 2 * n; i++)); do
        cp "$img" "$t/crash.qcow2"
        if ((i <= n)); then killed_at "$i" "$@" "$t/crash.qcow2"
        else failed_at $((i - n)) "$@" "$t/crash.qcow2"; fi
        check_after_crash "$t/crash.qcow2"
        qemu-img convert -O raw "$t/crash.qcow2" "$t/crash.raw"
        cmp "$t/crash.raw" "$old" || cmp "$t/crash.raw" "$new"
        for sn in $(qemu-img snapshot -l "$t/crash.qcow2" | awk 'NR > 2 { print $2 }'); do
            snapshot_raw "$t/crash.qcow2" "$sn" "$t/crash-sn.raw"
            cmp "$t/crash-sn.raw" "$t/$sn.raw"
        done
    done
    echo "# $n crash points, $((${copied_windows:-0})) in the copied-flag window" >&3
}

@test "snapshot -c, -d, -a: kill -9 or EIO at every write leaves the old or the new image" {
    requires strace
    scenario_image compat=1.1 4096
    tool_ok snapshot -c s1 "$img"
    snapshot_raw "$img" s1 "$t/s1.raw"
    later_writes "$img" 4096
    qemu-img convert -O raw "$img" "$t/now.raw"
    cp "$t/now.raw" "$t/s2.raw"
    crash_each_write "$t/now.raw" "$t/now.raw" snapshot -c s2
    crash_each_write "$t/now.raw" "$t/now.raw" snapshot -d s1
    crash_each_write "$t/now.raw" "$t/s1.raw" snapshot -a s1
}

@test "snapshot -c, -d: power cuts at many points leave the old or the new image" {
    scenario_image compat=1.1 4096
    tool_ok snapshot -c s1 "$img"
    later_writes "$img" 4096
    power_cut_each snapshot -c s2 "$t/pc.qcow2"
    power_cut_each snapshot -d s1 "$t/pc.qcow2"
}
