#!/usr/bin/env bats
# qcow2-tool info and map: the JSON fields qemu-img info and map print
# for the same image, equal, for the images of the read matrix (v2 and
# v3, cluster sizes 512 B to 2 MiB, refcount widths, every kind of L2
# entry), backing chains, extended L2 subclusters, compressed clusters,
# preallocated images, external data files, snapshots, and images left
# dirty or marked corrupt.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/read-functions.bash"
load "$BATS_TEST_DIRNAME/tool-functions.bash"

# matrix_image COMPAT CLUSTER REFCOUNT_BITS: the read matrix's image.
matrix_image ()
{
    local c=$2 size
    size=$(image_size "$c")
    qemu-img create -q -f qcow2 \
        -o compat="$1",cluster_size="$c",refcount_bits="$3" "$img" "$size"
    write_scenario "$img" "$c" "$size"
}

@test "info, map: v2, 512 B clusters"           { matrix_image 0.10 512 16; compare_info_map "$img"; }
@test "info, map: v2, 4 KiB clusters"           { matrix_image 0.10 4096 16; compare_info_map "$img"; }
@test "info, map: v2, 64 KiB clusters"          { matrix_image 0.10 65536 16; compare_info_map "$img"; }
@test "info, map: v2, 2 MiB clusters"           { matrix_image 0.10 2097152 16; compare_info_map "$img"; }
@test "info, map: v3, 512 B clusters, 1-bit refcounts"   { matrix_image 1.1 512 1; compare_info_map "$img"; }
@test "info, map: v3, 512 B clusters, 32-bit refcounts"  { matrix_image 1.1 512 32; compare_info_map "$img"; }
@test "info, map: v3, 4 KiB clusters, 64-bit refcounts"  { matrix_image 1.1 4096 64; compare_info_map "$img"; }
@test "info, map: v3, 4 KiB clusters, 4-bit refcounts"   { matrix_image 1.1 4096 4; compare_info_map "$img"; }
@test "info, map: v3, 64 KiB clusters, 16-bit refcounts" { matrix_image 1.1 65536 16; compare_info_map "$img"; }
@test "info, map: v3, 64 KiB clusters, 2-bit refcounts"  { matrix_image 1.1 65536 2; compare_info_map "$img"; }
@test "info, map: v3, 2 MiB clusters, 8-bit refcounts"   { matrix_image 1.1 2097152 8; compare_info_map "$img"; }
@test "info, map: v3, 2 MiB clusters, 64-bit refcounts"  { matrix_image 1.1 2097152 64; compare_info_map "$img"; }

@test "info, map: a backing chain qcow2 over qcow2 over raw, relative names" {
    make_chain "$BATS_TEST_TMPDIR" 65536
    compare_info_map "$BATS_TEST_TMPDIR/top.qcow2"
    # Names relative to the working directory, as a user types them.
    cd "$BATS_TEST_TMPDIR"
    compare_info_map top.qcow2
    compare_info_map sub/mid.qcow2
    # The chain's images, in order.
    run "$QCOW2_TOOL" info --backing-chain top.qcow2
    assert_success
    assert_equal "$(grep -c '^image: ' <<< "$output")" 3
    assert_line --index 0 "image: top.qcow2"
    assert_line "image: sub/deeper/base.raw"
}

@test "info, map: extended L2 subclusters, zstd, lazy refcounts, over an extended L2 backing" {
    local base=$BATS_TEST_TMPDIR/base.qcow2
    qemu-img create -q -f qcow2 -o extended_l2=on,compression_type=zstd "$base" 4M
    qemu-io -f qcow2 -c "write -P 1 0 4k" -c "write -P 2 64k 64k" \
        -c "write -z 8k 4k" -c "write -P 3 130k 2k" -c "write -z 200k 100k" \
        -c "discard 66k 2k" "$base" >/dev/null
    qemu-img create -q -f qcow2 -o extended_l2=on,lazy_refcounts=on \
        -b base.qcow2 -F qcow2 "$img" 6M
    qemu-io -f qcow2 -c "write -P 5 6k 4k" -c "write -z 128k 8k" \
        -c "write -P 6 5M 2k" "$img" >/dev/null
    compare_info_map "$base"
    compare_info_map "$img"
}

@test "info, map: compressed clusters (no offset), zero and data" {
    local raw=$BATS_TEST_TMPDIR/src.raw
    qemu-img create -q -f raw "$raw" 4M
    qemu-io -f raw -c "write -P 7 0 1M" -c "write -P 0 2M 64k" \
        -c "write -P 9 3M 100k" "$raw" >/dev/null
    qemu-img convert -c -O qcow2 "$raw" "$img"
    qemu-io -f qcow2 -c "write -P 8 64k 64k" -c "write -z 1M 64k" "$img" >/dev/null
    compare_info_map "$img"
    run "$QCOW2_TOOL" map --output=json "$img"
    assert_success
    assert_output --partial '"data": true'
}

@test "info, map: metadata preallocation (data clusters that are holes)" {
    qemu-img create -q -f qcow2 -o preallocation=metadata "$img" 4M
    qemu-io -f qcow2 -c "write -P 1 1M 64k" "$img" >/dev/null
    compare_info_map "$img"
}

@test "info, map: an external data file" {
    # qemu-img creates the data file relative to the working directory.
    cd "$BATS_TEST_TMPDIR"
    qemu-img create -q -f qcow2 -o data_file=data.raw "$img" 4M
    qemu-io -f qcow2 -c "write -P 1 1M 64k" -c "write -P 2 3M 4k" "$img" >/dev/null
    compare_info_map "$img"
    qemu-img create -q -f qcow2 -o data_file=raw.raw,data_file_raw=on \
        "$BATS_TEST_TMPDIR/r.qcow2" 4M
    compare_info_map "$BATS_TEST_TMPDIR/r.qcow2"
}

@test "info: internal snapshots, and the human form lists them" {
    qemu-img create -q -f qcow2 "$img" 4M
    qemu-io -f qcow2 -c "write -P 1 0 64k" "$img" >/dev/null
    qemu-img snapshot -c first "$img"
    qemu-io -f qcow2 -c "write -P 2 0 64k" "$img" >/dev/null
    qemu-img snapshot -c second "$img"
    compare_info_map "$img"
    run "$QCOW2_TOOL" info "$img"
    assert_success
    # The human form is qemu-img's, line for line.
    assert_equal "$output" "$(qemu-img info "$img")"
}

@test "info: a dirty image (lazy refcounts, writer killed) and one marked corrupt" {
    qemu-img create -q -f qcow2 -o lazy_refcounts=on "$img" 4M
    qemu-io -f qcow2 -c "write -P 1 0 64k" -c abort "$img" >/dev/null 2>&1 || :
    run "$QCOW2_TOOL" info --output=json "$img"
    assert_success
    assert_output --partial '"dirty-flag": true'
    compare_json info "$img"
    run "$QCOW2_TOOL" info "$img"
    assert_line "cleanly shut down: no"

    qemu-img create -q -f qcow2 "$BATS_TEST_TMPDIR/c.qcow2" 4M
    # incompatible_features bit 1: corrupt ("Header" in qcow2.txt).
    printf '\x02' | dd of="$BATS_TEST_TMPDIR/c.qcow2" bs=1 seek=79 conv=notrunc status=none
    compare_json info "$BATS_TEST_TMPDIR/c.qcow2"
    run "$QCOW2_TOOL" info --output=json "$BATS_TEST_TMPDIR/c.qcow2"
    assert_output --partial '"corrupt": true'
}

@test "info: the human form equals qemu-img's" {
    qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 "$img" 5G
    qemu-io -f qcow2 -c "write -P 1 0 300k" "$img" >/dev/null
    run "$QCOW2_TOOL" info "$img"
    assert_success
    assert_equal "$output" "$(qemu-img info "$img")"
}

@test "info, map: refusals are one message and exit 1" {
    run "$QCOW2_TOOL" info "$BATS_TEST_TMPDIR/missing.qcow2"
    assert_failure 1
    assert_output "qcow2-tool: open: $BATS_TEST_TMPDIR/missing.qcow2: No such file or directory"
    head -c 1M /dev/urandom > "$BATS_TEST_TMPDIR/junk"
    run "$QCOW2_TOOL" map "$BATS_TEST_TMPDIR/junk"
    assert_failure 1
    assert_output --partial "not a qcow2 image"
    qemu-img create -q -f qcow2 "$img" 1M
    run "$QCOW2_TOOL" info --output=yaml "$img"
    assert_failure 1
    assert_line --index 0 --partial "--output must be human or json"
    run "$QCOW2_TOOL" info "$img" extra
    assert_failure 1
    assert_line --index 0 --partial "unexpected argument 'extra'"
    run "$QCOW2_TOOL" info -f raw "$img"
    assert_failure 1
    run "$QCOW2_TOOL" frobnicate "$img"
    assert_failure 1
    assert_line --index 0 "qcow2-tool: unknown command 'frobnicate'"
    run "$QCOW2_TOOL" info -r all "$img"
    assert_failure 1
    run "$QCOW2_TOOL" --help
    assert_success
    assert_line --partial "info [--output=human|json]"
}

@test "info, map, check: a LUKS-encrypted image, without its passphrase" {
    local secret=(--object secret,id=s0,data=tool-secret)
    local opts=driver=qcow2,file.filename=$img,encrypt.key-secret=s0
    qemu-img create -q -f qcow2 "${secret[@]}" \
        -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 "$img" 4M
    qemu-io "${secret[@]}" --image-opts "$opts" \
        -c "write -P 1 0 64k" -c "write -z 1M 64k" >/dev/null
    # qemu-img info needs no key either; it also details the LUKS header.
    compare_json info "$img" -- encrypt
    run "$QCOW2_TOOL" info "$img"
    assert_line "encrypted: yes"
    # map and check need the key in qemu-img: given by --image-opts.
    qemu-img map --output=json "${secret[@]}" --image-opts "$opts" \
        > "$BATS_TEST_TMPDIR/qemu-map.json"
    run "$QCOW2_TOOL" map --output=json "$img"
    assert_success
    printf '%s\n' "$output" > "$BATS_TEST_TMPDIR/ours-map.json"
    run python3 "$BATS_TEST_DIRNAME/json-compare.py" \
        "$BATS_TEST_TMPDIR/ours-map.json" "$BATS_TEST_TMPDIR/qemu-map.json"
    assert_success
    run "$QCOW2_TOOL" check "$img"
    assert_success
    assert_line "No errors were found on the image."
}
