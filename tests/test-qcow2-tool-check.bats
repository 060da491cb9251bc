#!/usr/bin/env bats
# qcow2-tool check against qemu-img check: a corpus of damaged images
# (qemu-io, and byte pokes by qcow2-damage.py), each with the same
# classification and counts (JSON), the same problems reported and the
# same exit status (0 clean, 1 the check could not finish, 2 corrupt,
# 3 leaks only).

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"
load "$BATS_TEST_DIRNAME/tool-functions.bash"

@test "check: clean images of the read matrix, compressed clusters, snapshots" {
    local c size
    for c in 512 65536 2097152; do
        size=$(image_size $c)
        rm -f "$img"
        qemu-img create -q -f qcow2 -o cluster_size=$c "$img" "$size"
        write_scenario "$img" $c "$size"
        compare_check "$img" 0
    done
    rm -f "$img"
    qemu-img create -q -f qcow2 -o compat=0.10,refcount_bits=16 "$img" 8M
    qemu-io -f qcow2 -c "write -c -P 1 0 192k" -c "write -P 2 1M 64k" "$img" >/dev/null
    qemu-img snapshot -c one "$img"
    qemu-io -f qcow2 -c "write -P 3 0 64k" "$img" >/dev/null
    compare_check "$img" 0
    run "$QCOW2_TOOL" check "$img"
    assert_success
    assert_line "No errors were found on the image."
}

@test "check: a leaked cluster (refcount raised on a free cluster) is a leak, status 3" {
    damaged_image "$img" leak
    compare_check "$img" 3
    run "$QCOW2_TOOL" check "$img"
    assert_equal "$status" 3
    assert_output --partial "1 leaked clusters were found on the image."
}

@test "check: two leaks, one past the old end of the file" {
    damaged_image "$img" two_leaks
    compare_check "$img" 3
}

@test "check: a refcount too low is a corruption, status 2" {
    damaged_image "$img" refcount_too_low
    compare_check "$img" 2
}

@test "check: a refcount too high is a leak, and a wrong COPIED flag a corruption" {
    damaged_image "$img" refcount_too_high
    compare_check "$img" 2
}

@test "check: an L2 entry pointing at a free cluster" {
    damaged_image "$img" l2_at_free_cluster
    compare_check "$img" 2
}

@test "check: two L2 entries sharing one data cluster" {
    damaged_image "$img" l2_at_shared_cluster
    compare_check "$img" 2
}

@test "check: overlapping tables (a data cluster over its L2 table, an L2 table over the refcount block)" {
    damaged_image "$img" data_over_l2_table
    compare_check "$img" 2
    rm -f "$img"
    damaged_image "$img" l2_table_over_refblock
    compare_check "$img" 2
}

@test "check: a COPIED flag missing" {
    damaged_image "$img" copied_flag_wrong
    compare_check "$img" 2
}

@test "check: a misaligned refcount block makes the check fail, status 1" {
    damaged_image "$img" refblock_misaligned
    compare_check "$img" 1
    run "$QCOW2_TOOL" check "$img"
    assert_equal "$status" 1
    assert_line "qcow2-tool check: Check failed"
}

@test "check: a bad snapshot table (an L1 table offset not aligned)" {
    damaged_image "$img" snapshot_l1_misaligned
    compare_check "$img" 2
}

@test "check: dirty images left by a writer with lazy refcounts" {
    lazy_dirty_image "$img" "" -c "write -P 1 0 1M" -c "write -P 2 32M 64k"
    compare_check "$img" 2
    rm -f "$img"
    lazy_dirty_image "$img" extended_l2=on,cluster_size=128k \
        -c "write -P 1 0 1M" -c "write -P 2 32M 4k" -c "discard 64k 128k"
    compare_check "$img" 2
    # Small clusters: the writes reached the refcounts before the kill
    # (the cache filled); 2 MiB ones: they did not.
    local c rb want
    for c in 512 2097152; do
        want=$((c == 512 ? 0 : 2))
        rb=$((c == 512 ? 64 : 1))
        rm -f "$img"
        lazy_dirty_image "$img" cluster_size=$c,refcount_bits=$rb \
            -c "write -P 1 0 100k" -c "write -c -P 2 1M $c" -c "write -z 2M 64k"
        compare_check "$img" $want
    done
}

@test "check: the human form's summary equals qemu-img's" {
    damaged_image "$img" two_leaks
    run "$QCOW2_TOOL" check "$img"
    assert_equal "$status" 3
    local ours=$output
    run qemu-img check "$img"
    assert_equal "$status" 3
    # Both merge stderr (the problems) into the output: compare the
    # summary, which is all of stdout.
    assert_equal "$(grep -v -e '^qcow2-tool' -e '^Leaked' <<< "$ours")" \
        "$(grep -v -e '^Leaked' <<< "$output")"
}

@test "check: refusals are one message, status 1, and change nothing" {
    run "$QCOW2_TOOL" check "$BATS_TEST_TMPDIR/missing.qcow2"
    assert_equal "$status" 1
    assert_output "qcow2-tool: open: $BATS_TEST_TMPDIR/missing.qcow2: No such file or directory"
    # Persistent bitmaps are not checked.
    qemu-img create -q -f qcow2 "$img" 8M
    qemu-img bitmap --add "$img" b0
    local before
    before=$(md5sum < "$img")
    run "$QCOW2_TOOL" check "$img"
    assert_equal "$status" 1
    assert_output "qcow2-tool: $img: the image has persistent dirty bitmaps, which are not checked; refusing"
    assert_equal "$(md5sum < "$img")" "$before"
}

@test "check -r: leaks repaired with -r leaks and -r all" {
    local mode
    for mode in leaks all; do
        rm -f "$img"
        damaged_image "$img" two_leaks
        compare_repair "$img" $mode 0
    done
    rm -f "$img"
    damaged_image "$img" refcount_too_high
    compare_repair "$img" leaks 0
}

@test "check -r leaks: corruptions stay, or need -r all (status 1, image unchanged)" {
    damaged_image "$img" l2_at_shared_cluster
    compare_repair "$img" leaks 2 2
    rm -f "$img"
    damaged_image "$img" refcount_too_low
    compare_repair "$img" leaks 1
    rm -f "$img"
    damaged_image "$img" l2_at_free_cluster
    compare_repair "$img" leaks 1
}

@test "check -r all: refcounts too low, entries at free and shared clusters, overlaps, COPIED flags" {
    local kind
    for kind in refcount_too_low refcount_too_high l2_at_free_cluster \
                l2_at_shared_cluster data_over_l2_table copied_flag_wrong; do
        rm -f "$img"
        damaged_image "$img" $kind
        compare_repair "$img" all 0
    done
    rm -f "$img"
    damaged_image "$img" copied_flag_wrong
    compare_repair "$img" leaks 0
}

@test "check -r: a bad snapshot table is reported, the rest repaired as qemu-img does" {
    damaged_image "$img" snapshot_l1_misaligned
    compare_repair "$img" leaks 2 2
    rm -f "$img"
    damaged_image "$img" snapshot_l1_misaligned
    compare_repair "$img" all 2 2
}

@test "check -r all: dirty images from writers with lazy refcounts killed" {
    local options
    for options in "" extended_l2=on,cluster_size=128k \
                   cluster_size=2M,refcount_bits=1 cluster_size=512,refcount_bits=64; do
        rm -f "$img"
        lazy_dirty_image "$img" "$options" -c "write -P 1 0 1M" \
            -c "write -c -P 2 32M 64k" -c "write -z 40M 64k" -c "discard 64k 128k"
        compare_repair "$img" all 0
        run "$QCOW2_TOOL" info --output=json "$img"
        assert_output --partial '"dirty-flag": false'
    done
}

@test "check -r all: misplaced refcount blocks are refused, unchanged" {
    # Misplaced refcount blocks need a rebuild, which is not done.
    damaged_image "$img" l2_table_over_refblock
    local before
    before=$(md5sum < "$img")
    run "$QCOW2_TOOL" check -r all "$img"
    assert_equal "$status" 1
    assert_line --partial "rebuilding them is not supported: not repaired"
    assert_equal "$(md5sum < "$img")" "$before"
}

@test "check -r: a file that cannot be written is refused, unchanged" {
    damaged_image "$img" leak
    local before
    chmod a-w "$img"
    before=$(md5sum < "$img")
    if [[ -w $img ]]; then skip "running as root: the file stays writable"; fi
    run "$QCOW2_TOOL" check -r leaks "$img"
    assert_equal "$status" 1
    assert_line --partial "cannot be opened for writing: not repaired"
    assert_equal "$(md5sum < "$img")" "$before"
}

@test "check -r: a power cut at any point leaves an image no worse than before" {
    damaged_image "$img" two_leaks
    repair_power_cut "$img" leaks
    rm -f "$img"
    lazy_dirty_image "$img" cluster_size=4096 -c "write -P 1 0 1M" \
        -c "write -c -P 2 32M 64k" -c "discard 64k 128k"
    repair_power_cut "$img" all
}
