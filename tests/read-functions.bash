# Reading images QEMU makes, each checked against QEMU by check_image
# (tests/test-qcow2-read-matrix.bats, test-qcow2-read-features.bats and
# the qcow2 filter's test-qcow2-filter.bats).   -*- shell-script -*-
# Load after functions.sh:
#
#   load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
#   load "$BATS_TEST_DIRNAME/read-functions.bash"
#
# Our side is served as QCOW2_VIA says (start_ours in functions.sh).
# matrix and converted use $img, the image path the caller's setup sets.

# image_size CLUSTER: room for 20 clusters and at least 4 MiB, plus half
# a cluster (or 1.5 KiB for 512-byte clusters) so the last cluster is
# partial wherever the cluster size allows.
image_size ()
{
    local c=$1 size=$((20 * $1))
    ((size < 4 * 1024 * 1024)) && size=$((4 * 1024 * 1024))
    if ((c > 512)); then echo $((size + c / 2)); else echo $((size + 1536)); fi
}

# write_scenario IMG CLUSTER SIZE: the same mix of qemu-io operations at
# every cluster size.  Each line is one kind of L2 entry or one layout.
write_scenario ()
{
    local img=$1 c=$2 size=$3
    local l2_span=$((c * c / 8))     # guest bytes covered by one L2 table
    local cmds=(
        # data over one and a half clusters: a partly written cluster
        -c "write -P 0x11 0 $((c + c / 2))"
        # two clusters written together: contiguous on the host
        -c "write -P 0x22 $((3 * c)) $((2 * c))"
        # zeroes over half of an allocated cluster: stays data
        -c "write -z $((3 * c + c / 4)) $((c / 2))"
        # zeroes over unallocated clusters: zero clusters without data
        -c "write -z $((6 * c)) $((2 * c))"
        # data then zeroes, no unmap: zero cluster keeping its offset
        -c "write -P 0x33 $((8 * c)) $c"
        -c "write -z $((8 * c)) $c"
        # data then zeroes with unmap allowed
        -c "write -P 0x44 $((9 * c)) $c"
        -c "write -z -u $((9 * c)) $c"
        # data then discard
        -c "write -P 0x55 $((10 * c)) $((2 * c))"
        -c "discard $((10 * c)) $c"
        # clusters written in reverse order: not contiguous on the host
        -c "write -P 0x66 $((15 * c)) $c"
        -c "write -P 0x67 $((14 * c)) $c"
        # data written as zero bytes is still data
        -c "write -P 0 $((16 * c)) $c"
        # the last, partial cluster
        -c "write -P 0x77 $((size - 1024)) 1024"
        # a cluster allocated after the tail: host order != guest order
        -c "write -P 0x88 $((12 * c)) 512"
    )
    # A run across an L2 table boundary, where the image has one.
    if ((2 * l2_span < size)); then
        cmds+=(-c "write -P 0x99 $((l2_span - c)) $((2 * c))")
    fi
    qemu-io -f qcow2 "${cmds[@]}" "$img" >/dev/null
}

# matrix COMPAT CLUSTER REFCOUNT_BITS
matrix ()
{
    local compat=$1 c=$2 rb=$3 size
    size=$(image_size "$c")
    qemu-img create -q -f qcow2 \
        -o compat="$compat",cluster_size="$c",refcount_bits="$rb" \
        "$img" "$size"
    write_scenario "$img" "$c" "$size"
    qemu-img check -q "$img"
    check_image "$img"
}

# A raw file with data, zero runs and holes, converted by qemu-img
# (which leaves zero runs unallocated).
converted ()
{
    local compat=$1 c=$2 raw=$BATS_TEST_TMPDIR/src.raw
    truncate -s $((5 * 1024 * 1024 + 3 * 512)) "$raw"
    qemu-io -f raw \
        -c "write -P 0xa5 0 300k" \
        -c "write -P 0 300k 200k" \
        -c "write -P 0x5a 1M 1536" \
        -c "write -P 0x3c 3M 1M" \
        -c "write -P 0xc3 $((5 * 1024 * 1024)) 1536" \
        "$raw" >/dev/null
    qemu-img convert -f raw -O qcow2 -o compat="$compat",cluster_size="$c" \
        "$raw" "$img"
    check_image "$img"
    # And the guest view is the raw file itself.
    cmp "$BATS_TEST_TMPDIR/ours.raw" "$raw"
}


# Every case of the read matrix (test-qcow2-read-matrix.bats has a test
# for each): "COMPAT CLUSTER REFCOUNT-BITS" for matrix, "COMPAT CLUSTER"
# for converted.
READ_MATRIX_CASES=(
    "0.10 512 16" "0.10 4096 16" "0.10 65536 16" "0.10 2097152 16"
    "1.1 512 1" "1.1 512 32" "1.1 4096 64" "1.1 4096 4"
    "1.1 65536 16" "1.1 65536 2" "1.1 2097152 8" "1.1 2097152 64"
)
CONVERTED_CASES=("0.10 512" "1.1 4096" "1.1 65536" "0.10 2097152")

# whole_read_matrix: every case, one after the other.
whole_read_matrix ()
{
    local c
    for c in "${READ_MATRIX_CASES[@]}"; do
        echo "== matrix $c"
        # shellcheck disable=SC2086
        matrix $c || return 1
    done
    for c in "${CONVERTED_CASES[@]}"; do
        echo "== converted $c"
        # shellcheck disable=SC2086
        converted $c || return 1
    done
}

# Mixed data: compressible text, machine code, a zero run, a sparse tail.
make_source ()
{
    local out=$1 size=$2
    {
        head -c 600k /usr/bin/qemu-img
        base64 /usr/bin/qemu-img | head -c 700k
        head -c 300k /dev/zero
        head -c 200k /dev/urandom
    } > "$out"
    truncate -s "$size" "$out"
}

# clip_map SIZE: map_of lines cut at SIZE.
clip_map ()
{
    awk -v size="$1" '$1 < size {
        len = $1 + $2 > size ? size - $1 : $2
        printf "%.0f %.0f %d\n", $1, len, $3 }'
}

# check_snapshot IMG SNAPSHOT: our code (start_ours) serves the bytes
# of the snapshot as QEMU applies it (`qemu-img snapshot -a` on a copy:
# the size it had then); `qemu-img convert -l` and `qemu-nbd -l`, which
# keep the current size, agree within that size, for the bytes and for
# the map.
check_snapshot ()
{
    local img=$1 sn=$2 size T=$BATS_TEST_TMPDIR
    cp "$img" "$T/applied.qcow2" || return 1
    qemu-img snapshot -a "$sn" "$T/applied.qcow2" || return 1
    qemu-img convert -O raw "$T/applied.qcow2" "$T/snap.raw" || return 1
    size=$(stat -c %s "$T/snap.raw") || return 1
    qemu-img convert -l "$sn" -O raw "$img" "$T/snap-l.raw" || return 1
    cmp -n "$size" "$T/snap.raw" "$T/snap-l.raw" || return 1

    start_ours -r "$img" snapshot="$sn" || return 1
    start_qemu_nbd "$img" -l "$sn" || return 1
    assert_equal "$(nbdinfo --size "$uri")" "$size" || return 1
    copy_export "$uri" "$T/ours.raw" || return 1
    cmp "$T/ours.raw" "$T/snap.raw" || return 1
    map_of "$uri" > "$T/map.ours" || return 1
    map_of "$qemu_uri" > "$T/map.qemu.whole" || return 1
    clip_map "$size" < "$T/map.qemu.whole" > "$T/map.qemu" || return 1
    diff -u "$T/map.qemu" "$T/map.ours" || return 1
    cleanup_servers
}

# make_chain DIR CLUSTER: DIR/top.qcow2 -> DIR/sub/mid.qcow2 ->
# DIR/sub/deeper/base.raw, named relative to each image's directory,
# with partial overwrites and each layer shorter than the one above.
make_chain ()
{
    local d=$1 cs=$2
    mkdir -p "$d/sub/deeper"
    qemu-img create -q -f raw "$d/sub/deeper/base.raw" 3M
    qemu-io -f raw -c 'write -P 0xa1 0 1M' -c 'write -P 0xa2 2M 100k' \
        "$d/sub/deeper/base.raw" >/dev/null
    qemu-img create -q -f qcow2 -o cluster_size=$cs \
        -b deeper/base.raw -F raw "$d/sub/mid.qcow2" 5M
    qemu-io -f qcow2 -c 'write -P 0xb1 512k 1M' -c 'write -z 1536k 64k' \
        -c 'write -P 0xb2 4M 4k' -c 'write -P 0xb3 2900k 300k' \
        "$d/sub/mid.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -o cluster_size=$cs \
        -b sub/mid.qcow2 -F qcow2 "$d/top.qcow2" 8M
    qemu-io -f qcow2 -c 'write -P 0xc1 100k 8k' -c 'write -z 3M 1M' \
        -c 'write -P 0xc2 6M 1M' -c 'write -P 0xc3 2047k 2k' \
        "$d/top.qcow2" >/dev/null
}
