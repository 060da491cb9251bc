#!/usr/bin/env bats
# create=true: the plugin makes a new image when the file does not
# exist.  The oracle is qemu-img create -f qcow2 with the same options:
# the files must be identical byte for byte, `qemu-img check` must be
# clean, `qemu-img info` must say the same, the new disk must read as
# zeroes through the plugin, and QEMU must be able to write to it.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdinfo nbdcopy
    cd "$BATS_TEST_TMPDIR"
    mkdir ours ref
    # Backing files, one directory up from the images.
    qemu-img create -q -f raw base.raw 3M
    qemu-img create -q -f qcow2 base.qcow2 5M
}

# info_fields IMAGE: what `qemu-img info` says about the new image,
# without the fields that name or measure the file itself.
info_fields ()
{
    qemu-img info --output=json "$1" | /usr/bin/python3 -c '
import json, sys
i = json.load(sys.stdin)
spec = i.get("format-specific", {}).get("data", {})
keep = {k: i.get(k) for k in ("format", "virtual-size", "cluster-size",
        "backing-filename", "backing-filename-format", "dirty-flag")}
keep.update({k: spec.get(k) for k in ("compat", "lazy-refcounts",
        "refcount-bits", "compression-type", "extended-l2", "data-file",
        "data-file-raw", "corrupt")})
print(json.dumps(keep, sort_keys=True, indent=1))'
}

# create_and_compare SIZE|- PARAM...: make ours/img.qcow2 with the
# plugin (PARAMs are the plugin's; SIZE - leaves size= out), and
# ref/img.qcow2 with qemu-img, each from its own directory so that
# relative names (data-file=data.raw, backing-file=../base.raw) are
# spelled the same in both.
create_and_compare ()
{
    local size=$1; shift
    local p key val qopts=() plugin_args=()
    for p in "$@"; do
        key=${p%%=*} val=${p#*=}
        plugin_args+=("$p")
        case $key in
            backing-format) qopts+=("backing_fmt=$val") ;;
            *) qopts+=("${key//-/_}=$val") ;;
        esac
    done
    test "$size" != - && plugin_args+=(size="$size")
    local qo
    qo=$(IFS=,; echo "${qopts[*]}")

    # Ours: the server makes the image at start-up, then serves zeroes.
    (
        cd ours &&
        nbdkit -r -U - "$QCOW2_PLUGIN" file=img.qcow2 create=true \
               "${plugin_args[@]}" \
               --run 'nbdinfo --size "$uri" > size || exit 1
                      if test "$(cat size)" -le 67108864; then
                          nbdcopy "$uri" disk.raw
                      fi'
    ) || return 1
    # QEMU's.
    (
        cd ref &&
        qemu-img create -q -f qcow2 ${qo:+-o "$qo"} img.qcow2 \
                 $(test "$size" != - && echo "$size")
    ) || return 1

    # QEMU resolves a relative data file name against its working
    # directory: look at each image from its own.
    cd ours || return 1
    qemu-img check img.qcow2 || return 1
    info_fields img.qcow2 > info || return 1
    cd ../ref || return 1
    info_fields img.qcow2 > info || return 1
    cd .. || return 1
    diff -u ref/info ours/info || return 1

    # The disk the plugin served: the size QEMU gives, all zeroes
    # (the bytes are compared for small disks).
    local vsize
    vsize=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])' < ref/info) ||
        return 1
    assert_equal "$(cat ours/size)" "$vsize" || return 1
    if test -e ours/disk.raw; then
        truncate -s "$vsize" zeroes.raw || return 1
        cmp ours/disk.raw zeroes.raw || return 1
        rm zeroes.raw
    fi

    # Byte for byte the same file (and data file).
    cmp ours/img.qcow2 ref/img.qcow2 || return 1
    if test -e ref/data.raw; then
        assert_equal "$(stat -c %s ours/data.raw)" "$(stat -c %s ref/data.raw)" ||
            return 1
        cmp ours/data.raw ref/data.raw || return 1
    fi

    # QEMU can use it: write, read back, still clean.
    if ((vsize >= 131072)); then
        (
            cd ours &&
            qemu-io -f qcow2 -c "write -P 0xa5 65024 66560" \
                    -c "read -P 0xa5 65024 66560" -c "read -P 0 0 65024" img.qcow2 &&
            qemu-img check img.qcow2
        ) || return 1
    fi
}

@test "create: defaults" {
    create_and_compare 4M
}

@test "create: sizes (0, not a multiple of 512, not of the cluster, 1T)" {
    for size in 0 1000001 4194816 1T; do
        rm -rf ours/* ref/*
        echo "size $size"
        create_and_compare $size
    done
}

@test "create: cluster sizes" {
    for cs in 512 1K 4K 16K 2M; do
        rm -rf ours/* ref/*
        echo "cluster size $cs"
        create_and_compare 4M cluster-size=$cs
    done
}

@test "create: compat=0.10 (version 2)" {
    create_and_compare 4M compat=0.10
    rm -rf ours/* ref/*
    create_and_compare 4M compat=0.10 cluster-size=512
    rm -rf ours/* ref/*
    create_and_compare 4M compat=0.10 backing-file=../base.raw backing-format=raw
}

@test "create: refcount widths" {
    for bits in 1 2 4 8 16 32 64; do
        rm -rf ours/* ref/*
        echo "refcount bits $bits"
        create_and_compare 4M refcount-bits=$bits
    done
}

@test "create: zstd, extended L2, lazy refcounts" {
    create_and_compare 4M compression-type=zstd
    rm -rf ours/* ref/*
    create_and_compare 4M extended-l2=on cluster-size=16K
    rm -rf ours/* ref/*
    create_and_compare 4M lazy-refcounts=on
    rm -rf ours/* ref/*
    create_and_compare 4M compression-type=zstd extended-l2=on \
                       lazy-refcounts=on refcount-bits=64 cluster-size=32K
}

@test "create: backing file, size from the backing file" {
    create_and_compare 4M backing-file=../base.raw backing-format=raw
    rm -rf ours/* ref/*
    create_and_compare - backing-file=../base.raw backing-format=raw
    rm -rf ours/* ref/*
    create_and_compare - backing-file=../base.qcow2 backing-format=qcow2
    # The new image reads its backing file's data through the plugin.
    qemu-io -f qcow2 -c "write -P 0x3c 0 1M" base.qcow2
    nbdkit -r -U - "$QCOW2_PLUGIN" file=ours/img.qcow2 \
           --run 'nbdcopy "$uri" chained.raw'
    qemu-img convert -O raw ours/img.qcow2 expected.raw
    cmp chained.raw expected.raw
    # (the first three clusters were copied up by the writes above)
    qemu-io -f raw -c "read -P 0x3c 196608 851968" chained.raw
}

@test "create: external data file" {
    create_and_compare 4M data-file=data.raw
    rm -rf ours/* ref/*
    create_and_compare 4M data-file=data.raw data-file-raw=on
    rm -rf ours/* ref/*
    create_and_compare 1000001 data-file=data.raw data-file-raw=on cluster-size=4K
}

@test "create: preallocation=metadata" {
    create_and_compare 4M preallocation=metadata
    rm -rf ours/* ref/*
    create_and_compare 4194816 preallocation=metadata cluster-size=4K
    rm -rf ours/* ref/*
    create_and_compare 4M preallocation=metadata extended-l2=on \
                       backing-file=../base.raw backing-format=raw
    rm -rf ours/* ref/*
    create_and_compare 4M preallocation=metadata data-file=data.raw
    rm -rf ours/* ref/*
    create_and_compare 4M preallocation=metadata refcount-bits=1 cluster-size=1K
}

@test "create: preallocation=falloc and full" {
    local mode
    for mode in falloc full; do
        for args in "4194304" "0" "4194816 cluster-size=4K" \
                    "6291456 cluster-size=512" \
                    "4194304 extended-l2=on backing-file=../base.raw backing-format=raw" \
                    "4194304 data-file=data.raw" "4194304 refcount-bits=1"; do
            rm -rf ours/* ref/*
            echo "preallocation=$mode $args"
            # shellcheck disable=SC2086
            create_and_compare $args preallocation=$mode
            # The data clusters are allocated in the file system.
            if [[ "$args" == *data-file* ]]; then
                (( $(stat -c %b ours/data.raw) * 512 >= 4194304 ))
            else
                (( $(stat -c %b ours/img.qcow2) * 512 >= ${args%% *} ))
            fi
        done
    done
}

# 512-byte clusters: the refcount table (64 entries of 256 clusters)
# fills at 8 MiB of file, so QEMU grows it, twice here.
@test "create: preallocation=metadata with refcount table growth" {
    create_and_compare 12M preallocation=metadata cluster-size=512
}

# The same image is then served read-write: our own writes to it.
@test "create: the new image takes writes through the plugin" {
    nbdkit -U - "$QCOW2_PLUGIN" file=new.qcow2 create=true size=4M \
           --run 'nbdsh -u "$uri" -c "h.pwrite(b\"\\x5a\" * 100000, 12345)"'
    qemu-img check new.qcow2
    qemu-io -f qcow2 -c "read -P 0x5a 12345 100000" -c "read -P 0 0 12345" \
            -c "read -P 0 112345 100000" new.qcow2
}

@test "create: an existing file is opened as it is" {
    qemu-img create -q -f qcow2 -o cluster_size=4K old.qcow2 2M
    qemu-io -f qcow2 -c "write -P 0x77 0 4K" old.qcow2
    cp old.qcow2 before.qcow2
    nbdkit -r -U - "$QCOW2_PLUGIN" file=old.qcow2 create=true size=8M \
           cluster-size=64K --run 'nbdinfo --size "$uri" > size'
    [ "$(cat size)" -eq 2097152 ]
    cmp old.qcow2 before.qcow2
}

# expect_refusal MESSAGE PARAM...: nbdkit refuses to start, says
# MESSAGE, and leaves no new.qcow2 behind.
expect_refusal ()
{
    local message=$1; shift
    assert_startup_refused --partial "$message" \
        "$QCOW2_PLUGIN" file=new.qcow2 "$@" || return 1
    if test -e new.qcow2; then fail "new.qcow2 was left behind"; fi
}

@test "create: options refused, as qemu-img refuses them" {
    expect_refusal "needs size=" create=true
    expect_refusal "add create=true" size=1M
    expect_refusal "power of two between 512 and 2048k" create=true size=1M cluster-size=256
    expect_refusal "power of two between 512 and 2048k" create=true size=1M cluster-size=3000
    expect_refusal "power of two and may not exceed 64" create=true size=1M refcount-bits=3
    expect_refusal "power of two and may not exceed 64" create=true size=1M refcount-bits=0
    expect_refusal "power of two between 512 and 2048k" create=true size=1M cluster-size=0
    expect_refusal "preallocation must be" create=true size=1M preallocation=yes
    expect_refusal "at least 16384 bytes" create=true size=1M extended-l2=on cluster-size=8K
    expect_refusal "Lazy refcounts only supported" create=true size=1M compat=0.10 lazy-refcounts=on
    expect_refusal "Different refcount widths" create=true size=1M compat=0.10 refcount-bits=8
    expect_refusal "External data files are only" create=true size=1M compat=0.10 data-file=d.raw
    expect_refusal "Non-zlib compression" create=true size=1M compat=0.10 compression-type=zstd
    expect_refusal "compression-type must be" create=true size=1M compression-type=lz4
    expect_refusal "without backing format" create=true size=1M backing-file=base.raw
    expect_refusal "without backing file" create=true size=1M backing-format=raw
    expect_refusal "data-file-raw requires data-file" create=true size=1M data-file-raw=on
    expect_refusal "cannot be used at the same time" create=true data-file=d.raw \
                   data-file-raw=on backing-file=base.raw backing-format=raw
    expect_refusal "only be used at the same time if extended_l2" create=true \
                   preallocation=metadata backing-file=base.raw backing-format=raw
    expect_refusal "could not open backing file" create=true size=1M \
                   backing-file=missing.raw backing-format=raw
    expect_refusal "not in qcow2 format" create=true \
                   backing-file=base.raw backing-format=qcow2
    expect_refusal "too large for file format" create=true size=4P cluster-size=512
    [ ! -e d.raw ]
}

@test "create: an existing data file is never overwritten" {
    echo precious > d.raw
    expect_refusal "already exists" create=true size=1M data-file=d.raw
    [ "$(cat d.raw)" = precious ]
}
