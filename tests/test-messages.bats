#!/usr/bin/env bats
# What an operator reads: the export description (a qemu-img info
# summary of the image), the -D qcow2.{cache,alloc,codec}=1 debug flags,
# and the refusals, which name the image and what it is instead.
# Images are made by qemu-img and qemu-io; the description is read with
# nbdinfo.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdinfo
    requires_module "$QCOW2_PLUGIN"
    cd "$BATS_TEST_TMPDIR"
}

# description_of IMAGE [PARAMS...]: the export description our code
# (ours_args: plugin or filter as QCOW2_VIA says) gives for IMAGE.
description_of ()
{
    local img=$1; shift
    ours_args "$img" || return 1
    nbdkit -U - -r "${ours_args[@]}" "$@" \
        --run 'nbdinfo --json "$uri"' |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["exports"][0]["description"])'
}

@test "description: version, cluster size, refcounts, compression" {
    qemu-img create -q -f qcow2 v3.qcow2 1M
    run description_of v3.qcow2
    assert_success
    assert_output "qcow2 v3, 64 KiB clusters, 16-bit refcounts, zlib compression, not encrypted"

    qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
    run description_of v2.qcow2
    assert_output "qcow2 v2, 64 KiB clusters, 16-bit refcounts, zlib compression, not encrypted"

    qemu-img create -q -f qcow2 -o compression_type=zstd,cluster_size=4096,refcount_bits=1 z.qcow2 1M
    run description_of z.qcow2
    assert_output "qcow2 v3, 4 KiB clusters, 1-bit refcounts, zstd compression, not encrypted"

    QCOW2_VIA=filter-file run description_of z.qcow2
    assert_output "qcow2 v3, 4 KiB clusters, 1-bit refcounts, zstd compression, not encrypted"
}

@test "description: encryption" {
    qemu_img_create -q -f qcow2 --object secret,id=s,data=pass \
        -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 enc.qcow2 1M
    run description_of enc.qcow2 passphrase=pass
    assert_success
    assert_output "qcow2 v3, 64 KiB clusters, 16-bit refcounts, zlib compression, LUKS encryption"
}

@test "description: backing chain, snapshots, lazy refcounts, extended L2" {
    qemu-img create -q -f raw base.raw 4M
    qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 \
        -o lazy_refcounts=on,extended_l2=on,cluster_size=128k top.qcow2
    qemu-img snapshot -c first top.qcow2
    qemu-img snapshot -c second top.qcow2
    local common="qcow2 v3, 128 KiB clusters, 16-bit refcounts, zlib compression, not encrypted"
    run description_of top.qcow2
    assert_success
    assert_output "$common, backing mid.qcow2 (qcow2) > base.raw (raw), 2 snapshots, lazy refcounts, extended L2"
    run description_of top.qcow2 snapshot=second
    assert_output "$common, backing mid.qcow2 (qcow2) > base.raw (raw), 2 snapshots (exporting 2 \"second\"), lazy refcounts, extended L2"
    run description_of top.qcow2 backing=none
    assert_output "$common, backing mid.qcow2 (qcow2, not opened), 2 snapshots, lazy refcounts, extended L2"
}

@test "description: data file, dirty, corrupt" {
    local common="qcow2 v3, 64 KiB clusters, 16-bit refcounts, zlib compression, not encrypted"
    qemu-img create -q -f qcow2 -o data_file=data.raw,data_file_raw=on df.qcow2 1M
    run description_of df.qcow2
    assert_success
    assert_output "$common, data file data.raw (raw)"

    # qemu-io's abort leaves a lazy-refcounts image dirty, as a crash would.
    qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 1M
    qemu-io -c 'write 0 4k' -c abort dirty.qcow2 >/dev/null 2>&1 || true
    run description_of dirty.qcow2
    assert_output "$common, lazy refcounts, dirty"

    # The corrupt bit: incompatible feature bit 1 (header byte 79).
    qemu-img create -q -f qcow2 corrupt.qcow2 1M
    printf '\002' | dd of=corrupt.qcow2 bs=1 seek=79 conv=notrunc status=none
    run description_of corrupt.qcow2
    assert_output "$common, corrupt"

    # A name the image records stays one line of printable text.
    qemu-img create -q -f qcow2 -u -b $'evil\nname\001' -F raw evil.qcow2 1M
    run description_of evil.qcow2 backing=none
    assert_output "$common, backing evil?name? (raw, not opened)"
}

# debug_log FLAG... -- NBDKIT-ARGS...: nbdkit -v with -D qcow2.FLAG=1 for
# each FLAG, serving NBDKIT-ARGS, running $client; its log into
# debug.log.
debug_log ()
{
    local flags=()
    while test "$1" != --; do flags+=(-D "qcow2.$1=1"); shift; done
    shift
    nbdkit -v -U - "${flags[@]}" "$@" --run "$client" >debug.log 2>&1 ||
        { grep -v ': debug: ' debug.log; return 1; }
}

# The filter opens a backing file only when told to.
backing_local ()
{
    if test "${QCOW2_VIA:-plugin}" != plugin; then echo backing=local backing-dir="$PWD"; fi
}

# who IMAGE: how the log names IMAGE (the filter knows no file name).
who ()
{
    if test "${QCOW2_VIA:-plugin}" = plugin; then echo "$1"
    else echo "the qcow2 image on the layer below"; fi
}

# For the plugin and for the filter.
debug_flags_for ()
{
    qemu-img create -q -f raw base.raw 4M
    qemu-io -f raw -c 'write -P 1 0 4M' base.raw >/dev/null
    qemu-img create -q -f qcow2 -b base.raw -F raw over.qcow2
    # Free room for the filter, whose file plugin cannot grow the file.
    truncate -s 1M over.qcow2
    qemu-img convert -c -O qcow2 base.raw comp.qcow2
    # Cache: 256 L2 tables of 512 bytes in use, a cache of 128: one map
    # misses every table, hits it again, and evicts.
    qemu-img create -q -f qcow2 -o cluster_size=512 big.qcow2 16M
    local writes=() i
    for ((i = 0; i < 256; i++)); do writes+=(-c "write $((i * 32768)) 512"); done
    qemu-io -t unsafe "${writes[@]}" big.qcow2 >/dev/null

    client='nbdinfo --map "$uri" >/dev/null'
    ours_args big.qcow2
    debug_log cache -- -r "${ours_args[@]}" l2-cache-size=64K
    grep -q "$(who big.qcow2): L2 cache miss: table at 0x" debug.log
    grep -q "$(who big.qcow2): L2 cache hit: table at 0x" debug.log
    grep -q "$(who big.qcow2): L2 cache eviction: table at 0x" debug.log
    run grep -c "codec:\|alloc:" debug.log
    assert_output 0
    debug_log -- -r "${ours_args[@]}" l2-cache-size=64K
    run grep -c "L2 cache" debug.log
    assert_output 0

    client='nbdsh -u "$uri" -c "h.pwrite(b\"x\" * 512, 4096)"'
    cp over.qcow2 over-copy.qcow2
    ours_args over.qcow2
    debug_log alloc -- "${ours_args[@]}" $(backing_local)
    grep -q "$(who over.qcow2): alloc: 1 cluster(s) at host offset 0x" debug.log
    grep -q "$(who over.qcow2): alloc: copy-on-write of guest 0+65536 into host 0x[0-9a-f]* (head and tail)" debug.log
    grep -q "$(who over.qcow2): alloc: L2 table 0 at host offset 0x" debug.log
    grep -q "$(who over.qcow2): refcount block cache \(hit\|miss\)" debug.log && fail "cache messages without the flag"
    cp over-copy.qcow2 over.qcow2
    debug_log cache -- "${ours_args[@]}" $(backing_local)
    grep -q "$(who over.qcow2): refcount block cache \(hit\|miss\): table at 0x" debug.log
    run grep -c "alloc:" debug.log
    assert_output 0

    client='nbdcopy "$uri" /dev/null && nbdsh -u "$uri" -c "h.pread(512, 512); h.pread(512, 1024)"'
    ours_args comp.qcow2
    debug_log codec -- -r "${ours_args[@]}"
    grep -q "$(who comp.qcow2): codec: guest 0: compressed cluster, zlib decoder (" debug.log
    grep -q "$(who comp.qcow2): codec: guest 0: compressed cluster, from the decompressed cluster cache" debug.log
    ours_args over.qcow2
    debug_log codec -- -r "${ours_args[@]}" $(backing_local)
    grep -q "$(who over.qcow2): codec: guest 0x10000+[0-9]*: unallocated, from the backing file or zeroes" debug.log
    debug_log -- -r "${ours_args[@]}" $(backing_local)
    run grep -c "codec:" debug.log
    assert_output 0
}

@test "debug flags: cache, alloc, codec (plugin)" {
    requires nbdsh nbdcopy
    debug_flags_for
}

@test "debug flags: cache, alloc, codec (filter)" {
    requires nbdsh nbdcopy
    requires_module "$QCOW2_FILTER"
    QCOW2_VIA=filter-file debug_flags_for
}

@test "errors: a file of another format is named" {
    requires_module "$LUKS_FILTER"
    qemu_img_create -q -f luks --object secret,id=s,data=pass \
        -o key-secret=s,iter-time=10 vol.luks 1M
    for f in vmdk vdi vhdx vpc raw; do qemu-img create -q -f $f x.$f 1M; done
    qemu-img create -q -f vpc -o subformat=fixed fixed.vpc 1M
    local p="^nbdkit: error: $PWD"
    assert_startup_refused "$p/vol.luks: not a qcow2 image \(bad magic\); this is a LUKS volume: use the luks filter\$" "$QCOW2_PLUGIN" vol.luks
    assert_startup_refused "$p/x.vmdk: not a qcow2 image \(bad magic\); this is a VMDK image \(qemu-nbd -f vmdk serves it\)\$" "$QCOW2_PLUGIN" x.vmdk
    assert_startup_refused "$p/x.vdi: not a qcow2 image \(bad magic\); this is a VDI image \(qemu-nbd -f vdi serves it\)\$" "$QCOW2_PLUGIN" x.vdi
    assert_startup_refused "$p/x.vhdx: not a qcow2 image \(bad magic\); this is a VHDX image \(qemu-nbd -f vhdx serves it\)\$" "$QCOW2_PLUGIN" x.vhdx
    assert_startup_refused "$p/x.vpc: not a qcow2 image \(bad magic\); this is a dynamic VHD image \(qemu-nbd -f vpc serves it\)\$" "$QCOW2_PLUGIN" x.vpc
    assert_startup_refused "$p/fixed.vpc: not a qcow2 image \(bad magic\); this is a fixed-size VHD image \(qemu-nbd -f vpc serves it\)\$" "$QCOW2_PLUGIN" fixed.vpc
    assert_startup_refused "$p/x.raw: not a qcow2 image \(bad magic\); no image format known here: if it is a raw disk, nbdkit's file plugin serves it\$" "$QCOW2_PLUGIN" x.raw
}

@test "errors: the luks filter says it once, and names a qcow2 image" {
    requires_module "$LUKS_FILTER"
    requires nbdsh
    truncate -s 1M zeroes
    qemu-img create -q -f qcow2 img.qcow2 1M
    run nbdkit -U - --filter="$LUKS_FILTER" file zeroes passphrase=x \
        --run 'nbdsh -u "$uri" -c "h.get_size()"'
    assert_failure
    assert_line "nbdkit: file[1]: error: luks: not a LUKS volume (no LUKS header at offset 0)"
    run nbdkit -U - --filter="$LUKS_FILTER" file img.qcow2 passphrase=x \
        --run 'nbdsh -u "$uri" -c "h.get_size()"'
    assert_failure
    assert_line "nbdkit: file[1]: error: luks: not a LUKS volume (no LUKS header at offset 0); this is a qcow2 image: use the qcow2 plugin or the qcow2 filter"
}

@test "errors: a wrong passphrase and a key derivation over a cap name the image" {
    qemu_img_create -q -f qcow2 --object secret,id=s,data=pass \
        -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 enc.qcow2 1M
    assert_startup_refused "^nbdkit: error: $PWD/enc.qcow2: the passphrase does not unlock any key slot\$" \
        "$QCOW2_PLUGIN" enc.qcow2 passphrase=wrong    # So does a key derivation over a cap (qemu-img measures its
    # iterations: more than 1000 with any iter-time).
    assert_startup_refused "^nbdkit: error: $PWD/enc.qcow2: LUKS1 (key slot 0|master key digest): pbkdf2 iterations [0-9]+ exceed the cap [0-9]+ (for sha256 with [0-9]+ bytes of output )?\(kdf-max-iterations=" \
        "$QCOW2_PLUGIN" enc.qcow2 passphrase=pass kdf-max-iterations=1000
}
