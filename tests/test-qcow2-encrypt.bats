#!/usr/bin/env bats
# qcow2 images with built-in encryption (crypt_method 2 = LUKS, 1 = the
# legacy AES) through our plugin, with QEMU as the oracle:
#  - reads equal `qemu-img convert -O raw` of images qemu-img made and
#    qemu-io filled, also for unaligned reads (partial sectors);
#  - a seeded random workload (unaligned pwrites, zero, trim, several
#    connections) leaves an image that `qemu-img check` finds clean and
#    `qemu-img compare` finds equal to a raw reference: this covers
#    copy-on-write at new host offsets (LUKS IVs come from the host
#    offset), clusters shared with internal snapshots, partial writes
#    over a backing file, and read-modify-write of partial sectors;
#  - a missing or wrong passphrase, a damaged LUKS header and a bad
#    encryption header extension are each refused with one message.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/write-functions.sh"

PASS=qcow2-secret-pass
SECRET="secret,id=sec0,data=$PASS"

setup ()
{
    requires qemu-img qemu-io nbdinfo nbdcopy
    test -x /usr/bin/python3 || skip "/usr/bin/python3 is not installed"
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
    cd "$BATS_TEST_TMPDIR"
    img=$BATS_TEST_TMPDIR/enc.qcow2
    ref=$BATS_TEST_TMPDIR/ref.raw
    echo -n "$PASS" > pass
}

# make_encrypted FORMAT IMAGE SIZE [-o OPTIONS] [qemu-img create args]:
# a new encrypted image by qemu-img (luks: fast PBKDF).  Its PBKDF
# timing sometimes fails ("Unable to get accurate CPU usage"): retry.
make_encrypted ()
{
    local fmt=$1 out=$2 size=$3 opts i
    shift 3
    opts=encrypt.format=$fmt,encrypt.key-secret=sec0
    test "$fmt" = luks && opts=$opts,encrypt.iter-time=10
    if test "${1:-}" = -o; then
        opts=$opts,$2
        shift 2
    fi
    for i in 1 2 3 4 5; do
        rm -f "$out"
        qemu-img create -q -f qcow2 --object "$SECRET" -o "$opts" "$@" \
            "$out" "$size" && return 0
    done
    return 1
}

# image_opts IMAGE: --image-opts for QEMU, the secret also for an
# encrypted backing file.
image_opts ()
{
    local o="driver=${qemu_driver:-qcow2},file.filename=$1,encrypt.key-secret=sec0"
    if test -n "${encrypted_backing:-}"; then
        o=$o,backing.encrypt.key-secret=sec0
    fi
    echo "$o"
}

qio ()
{
    local image=$1
    shift
    qemu-io --object "$SECRET" --image-opts "$(image_opts "$image")" "$@" \
        >/dev/null
}

# qemu_view IMAGE RAW: the guest view according to QEMU.
qemu_view ()
{
    rm -f "$2"
    qemu-img convert --object "$SECRET" --image-opts "$(image_opts "$1")" \
        -O raw "$2"
}

# qemu_check IMAGE: `qemu-img check` of the encrypted image exit 0.
qemu_check ()
{
    check_clean "$(image_opts "$1")" --object "$SECRET" --image-opts
}

# qemu_compare IMAGE RAW: QEMU decrypts IMAGE to exactly RAW.
qemu_compare ()
{
    qemu-img compare --object "$SECRET" --image-opts \
        "$(image_opts "$1")" "driver=raw,file.filename=$2"
}

# prefill IMAGE SIZE: data of every alignment, zero clusters with and
# without their space, a discarded cluster, by QEMU.
prefill ()
{
    local m=$((1024 * 1024)) size=$2
    qio "$1" \
        -c "write -P 0x5a 0 $((3 * m))" \
        -c "write -P 0x61 $((3 * m + 1000)) 777" \
        -c "write -z $((1 * m)) $((m / 2))" \
        -c "write -P 0x33 $((5 * m + 4096)) $((2 * m))" \
        -c "write -z -u $((6 * m)) $((m / 2))" \
        -c "discard $((5 * m)) 65536" \
        -c "write -P 0xc3 $((size - 3 * m)) $((2 * m + 12345))"
}

# random_reads URI RAW N: N reads of random offsets and lengths (not
# sector-aligned) must equal RAW.
random_reads ()
{
    /usr/bin/python3 - "$@" <<'EOF'
import random, sys
import nbd
uri, raw, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(raw, "rb").read()
h = nbd.NBD()
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri(uri)
assert h.get_size() == len(data)
rnd = random.Random(n)
for i in range(n):
    count = rnd.choice([1, 7, 511, 513, 1000, 4097, 65536 + 3, 300000])
    off = rnd.randrange(0, len(data) - count)
    if h.pread(count, off) != data[off:off + count]:
        sys.exit("mismatch reading %d bytes at %d" % (count, off))
h.shutdown()
EOF
}

# check_reads IMAGE [PLUGIN-ARGS...]: our plugin serves what QEMU sees.
check_reads ()
{
    local image=$1
    shift
    qemu_view "$image" qemu.raw || return 1
    start_nbdkit -r "$QCOW2_PLUGIN" file="$image" passphrase="$PASS" "$@" || return 1
    rm -f ours.raw
    nbdcopy "$uri" ours.raw || return 1
    cmp qemu.raw ours.raw || return 1
    random_reads "$uri" qemu.raw 200 || return 1
    local info
    info=$(nbdinfo --json "$uri") || return 1
    assert_equal "$(/usr/bin/python3 -c \
        'import json,sys; print(json.load(sys.stdin)["exports"][0]["block_size_minimum"])' \
        <<<"$info")" 512
}

# run_encrypted_workload IMAGE SEED [WORKLOAD-ARGS...]: the write
# workload through our plugin; REF must hold the guest view before.
run_encrypted_workload ()
{
    local image=$1 seed=$2
    shift 2
    start_nbdkit "$QCOW2_PLUGIN" file="$image" passphrase=+pass || return 1
    echo "workload seed $seed" >&2
    workload run --uri "$uri" --reference "$ref" --seed "$seed" \
        --ops "${WRITE_OPS:-200}" "$@" || return 1
    stop_server "$nbdkit_pid" || return 1
    qemu_check "$image" || return 1
    qemu_compare "$image" "$ref"
}

# ----------------------------------------------------------------------
# Reads

@test "encrypt: LUKS, 64 KiB clusters, reads equal QEMU" {
    make_encrypted luks "$img" 16M
    prefill "$img" $((16 * 1024 * 1024))
    check_reads "$img"
}

@test "encrypt: LUKS, 512 B clusters, reads equal QEMU" {
    make_encrypted luks "$img" 8M -o cluster_size=512
    prefill "$img" $((8 * 1024 * 1024))
    check_reads "$img"
}

@test "encrypt: LUKS, 2 MiB clusters, extended L2, reads equal QEMU" {
    make_encrypted luks "$img" 16M -o cluster_size=2M,extended_l2=on
    prefill "$img" $((16 * 1024 * 1024))
    check_reads "$img"
}

@test "encrypt: LUKS, v2 image, reads equal QEMU" {
    make_encrypted luks "$img" 16M -o compat=0.10
    prefill "$img" $((16 * 1024 * 1024))
    check_reads "$img"
}

@test "encrypt: legacy AES, 64 KiB clusters, reads equal QEMU" {
    make_encrypted aes "$img" 16M
    prefill "$img" $((16 * 1024 * 1024))
    check_reads "$img"
}

@test "encrypt: legacy AES, 512 B and 2 MiB clusters, reads equal QEMU" {
    make_encrypted aes "$img" 8M -o cluster_size=512
    prefill "$img" $((8 * 1024 * 1024))
    check_reads "$img"
    cleanup_servers
    make_encrypted aes "$img" 16M -o cluster_size=2M
    prefill "$img" $((16 * 1024 * 1024))
    check_reads "$img"
}

@test "encrypt: legacy AES in qcow version 1, reads equal QEMU" {
    qemu_driver=qcow
    qemu-img create -q -f qcow --object "$SECRET" \
        -o encrypt.format=aes,encrypt.key-secret=sec0 "$img" 8M
    qio "$img" -c "write -P 0x5a 1000 70000" -c "write -P 0x61 3M 1M"
    check_reads "$img"
}

@test "encrypt: LUKS overlay over a plain and over a LUKS backing file" {
    local base=$BATS_TEST_TMPDIR/base.qcow2
    qemu-img create -q -f qcow2 "$base" 16M
    qemu-io -f qcow2 -c "write -P 0x11 0 16M" "$base" >/dev/null
    make_encrypted luks "$img" 16M -b "$base" -F qcow2
    qio "$img" -c "write -P 0x22 1M 1000" -c "write -P 0x23 5M 3M"
    check_reads "$img"
    cleanup_servers

    make_encrypted luks "$base" 16M
    qio "$base" -c "write -P 0x33 0 16M"
    make_encrypted luks "$img" 16M -b "$base" -F qcow2
    encrypted_backing=1
    qio "$img" -c "write -P 0x44 1M 1000" -c "write -P 0x45 5M 3M"
    check_reads "$img"
}

@test "encrypt: internal snapshot of an encrypted image" {
    make_encrypted luks "$img" 16M
    prefill "$img" $((16 * 1024 * 1024))
    qemu-img snapshot --object "$SECRET" --image-opts "$(image_opts "$img")" \
        -c first
    qio "$img" -c "write -P 0x99 0 5M"
    qemu-img convert --object "$SECRET" -l snapshot.name=first \
        --image-opts "$(image_opts "$img")" -O raw first.raw
    start_nbdkit -r "$QCOW2_PLUGIN" file="$img" passphrase="$PASS" snapshot=first
    nbdcopy "$uri" ours.raw
    cmp first.raw ours.raw
}

# ----------------------------------------------------------------------
# Writes

@test "encrypt: LUKS writes (64 KiB clusters) decrypt correctly in QEMU" {
    make_encrypted luks "$img" 32M
    prefill "$img" $((32 * 1024 * 1024))
    qemu_view "$img" "$ref"
    run_encrypted_workload "$img" "$(write_seed 100)"
}

@test "encrypt: LUKS writes (512 B clusters)" {
    make_encrypted luks "$img" 16M -o cluster_size=512
    prefill "$img" $((16 * 1024 * 1024))
    qemu_view "$img" "$ref"
    run_encrypted_workload "$img" "$(write_seed 101)" --cluster-size 512
}

@test "encrypt: LUKS writes (2 MiB clusters, extended L2)" {
    make_encrypted luks "$img" 32M -o cluster_size=2M,extended_l2=on
    prefill "$img" $((32 * 1024 * 1024))
    qemu_view "$img" "$ref"
    run_encrypted_workload "$img" "$(write_seed 102)" --cluster-size 2097152
}

@test "encrypt: legacy AES writes" {
    make_encrypted aes "$img" 32M
    prefill "$img" $((32 * 1024 * 1024))
    qemu_view "$img" "$ref"
    run_encrypted_workload "$img" "$(write_seed 103)"
}

@test "encrypt: LUKS writes over a backing file (partial clusters copied up)" {
    local base=$BATS_TEST_TMPDIR/base.qcow2
    make_encrypted luks "$base" 32M
    qio "$base" -c "write -P 0x11 0 32M"
    qemu_view "$base" base.raw
    make_encrypted luks "$img" 32M -b "$base" -F qcow2
    encrypted_backing=1
    qio "$img" -c "write -P 0x22 1M 1000"
    qemu_view "$img" "$ref"
    local base_sum
    base_sum=$(md5sum < "$base")
    run_encrypted_workload "$img" "$(write_seed 104)" --backing base.raw
    [ "$(md5sum < "$base")" = "$base_sum" ]
}

@test "encrypt: LUKS writes to clusters shared with a snapshot (re-encrypted copies)" {
    make_encrypted luks "$img" 32M
    prefill "$img" $((32 * 1024 * 1024))
    qemu-img snapshot --object "$SECRET" --image-opts "$(image_opts "$img")" \
        -c first
    qemu-img convert --object "$SECRET" -l snapshot.name=first \
        --image-opts "$(image_opts "$img")" -O raw first.before
    qemu_view "$img" "$ref"

    # Small writes into shared clusters: each copy lands at a new host
    # offset, so its sectors must be encrypted again with new IVs.
    start_nbdkit "$QCOW2_PLUGIN" file="$img" passphrase="$PASS"
    /usr/bin/python3 - "$uri" "$ref" <<'EOF'
import sys
import nbd
uri, ref = sys.argv[1], sys.argv[2]
h = nbd.NBD()
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri(uri)
with open(ref, "r+b") as f:
    for off, data in [(100, b"A" * 10), (65536 * 3 + 4095, b"B" * 2),
                      (1048576 + 512, b"C" * 512), (2 * 1048576 - 1, b"D" * 3)]:
        h.pwrite(data, off)
        f.seek(off)
        f.write(data)
h.flush()
h.shutdown()
EOF
    stop_server "$nbdkit_pid"
    qemu_check "$img"
    qemu_compare "$img" "$ref"
    qemu-img convert --object "$SECRET" -l snapshot.name=first \
        --image-opts "$(image_opts "$img")" -O raw first.after
    cmp first.before first.after

    run_encrypted_workload "$img" "$(write_seed 105)"
    qemu-img convert --object "$SECRET" -l snapshot.name=first \
        --image-opts "$(image_opts "$img")" -O raw first.after
    cmp first.before first.after
}

@test "encrypt: concurrent unaligned writes into the same sectors" {
    # Requests of a few dozen bytes tile 4 KiB ranges in random order,
    # all in flight at once over four connections: each partial sector
    # is read, merged and written back by several requests, which must
    # not undo each other.
    make_encrypted luks "$img" 16M
    qio "$img" -c "write -P 0x11 0 16M"
    qemu_view "$img" "$ref"
    start_nbdkit "$QCOW2_PLUGIN" file="$img" passphrase=+pass
    /usr/bin/python3 - "$uri" "$ref" <<'EOF'
import random, sys
import nbd
uri, ref = sys.argv[1], sys.argv[2]
conns = []
for i in range(4):
    h = nbd.NBD()
    h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
    h.connect_uri(uri)
    conns.append(h)
data = bytearray(open(ref, "rb").read())
rnd = random.Random(7)
for r in range(60):
    base = rnd.randrange(0, len(data) // 4096) * 4096
    piece = rnd.choice([37, 100, 200, 333])
    offs = list(range(base, base + 4096, piece))
    rnd.shuffle(offs)
    inflight = []
    for j, off in enumerate(offs):
        buf = bytes([rnd.randrange(256)]) * min(piece, base + 4096 - off)
        data[off:off + len(buf)] = buf
        h = conns[j % len(conns)]
        inflight.append((h, h.aio_pwrite(buf, off)))
    for h, cookie in inflight:
        while not h.aio_command_completed(cookie):
            h.poll(-1)
for h in conns:
    h.flush()
    h.shutdown()
open(ref, "wb").write(data)
EOF
    stop_server "$nbdkit_pid"
    qemu_check "$img"
    qemu_compare "$img" "$ref"
}

@test "encrypt: LUKS, preallocation=metadata (host holes are not zeroes)" {
    make_encrypted luks "$img" 8M -o preallocation=metadata
    qio "$img" -c "write -P 0x21 1M 1000"
    check_reads "$img"
    # QEMU reports such clusters as data, not zero: so must we
    map_of "$uri" > map
    assert_equal "$(awk '{ print $3 }' map | sort -u)" 0
}

# ----------------------------------------------------------------------
# create=true

# luks_area IMAGE: "OFFSET LENGTH" from the encryption header extension.
luks_area ()
{
    /usr/bin/python3 - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read(65536)
v = struct.unpack(">I", d[4:8])[0]
p = struct.unpack(">I", d[100:104])[0] if v == 3 else 72
while True:
    magic, ln = struct.unpack(">II", d[p:p + 8])
    if magic == 0:
        sys.exit("no encryption header extension")
    if magic == 0x0537be77:
        print(*struct.unpack(">QQ", d[p + 8:p + 24]))
        break
    p += 8 + (ln + 7) // 8 * 8
EOF
}

# same_outside FILE1 FILE2 OFFSET LENGTH: equal except in that range.
same_outside ()
{
    local end=$(($3 + $4))
    cmp -n "$3" "$1" "$2" || return 1
    assert_equal "$(stat -c %s "$1")" "$(stat -c %s "$2")" || return 1
    cmp -i "$end:$end" "$1" "$2"
}

# create_like QEMU-OPTIONS PLUGIN-ARGS...: an encrypted image made by
# create=true must be qemu-img's own, byte for byte, except for the
# random LUKS key material.
create_like ()
{
    local qopts=$1 q=$BATS_TEST_TMPDIR/qemu.qcow2
    shift
    local area
    make_encrypted luks "$q" 4M ${qopts:+-o "$qopts"} || return 1
    rm -f "$img"
    nbdkit "$QCOW2_PLUGIN" file="$img" create=true size=4M \
        encrypt-format=luks encrypt-iter-time=10 passphrase=+pass "$@" \
        --run 'true' || return 1
    area=$(luks_area "$img") || return 1
    assert_equal "$area" "$(luks_area "$q")" || return 1
    # shellcheck disable=SC2086
    same_outside "$q" "$img" $area || return 1
    qemu_check "$img"
}

@test "encrypt: create=true encrypt-format=luks makes qemu-img's layout" {
    create_like ""
    create_like cluster_size=512 cluster-size=512
    create_like compat=0.10,cluster_size=2M compat=0.10 cluster-size=2M
    create_like preallocation=metadata,refcount_bits=64,cluster_size=4096 \
        preallocation=metadata refcount-bits=64 cluster-size=4096
}

@test "encrypt: create=true encrypt-format=luks, then writes QEMU decrypts" {
    rm -f "$img"
    truncate -s 32M "$ref"
    start_nbdkit "$QCOW2_PLUGIN" file="$img" create=true size=32M \
        encrypt-format=luks encrypt-iter-time=10 passphrase=+pass
    workload run --uri "$uri" --reference "$ref" \
        --seed "$(write_seed 106)" --ops "${WRITE_OPS:-200}"
    stop_server "$nbdkit_pid"
    qemu_check "$img"
    qemu_compare "$img" "$ref"
}

@test "encrypt: create=true encrypt-format=aes is qemu-img's image" {
    make_encrypted aes qemu.qcow2 4M
    rm -f "$img"
    nbdkit "$QCOW2_PLUGIN" file="$img" create=true size=4M \
        encrypt-format=aes passphrase=+pass --run 'true'
    cmp qemu.qcow2 "$img"
}

@test "encrypt: create=true encrypt-format= without a passphrase" {
    rm -f "$img"
    refused "$img" "create: an encrypted image needs a passphrase" \
        create=true size=4M encrypt-format=luks
    [ ! -e "$img" ]
}

# ----------------------------------------------------------------------
# Errors

# refused IMAGE MESSAGE [PLUGIN-ARGS...]: the server refuses to start,
# saying MESSAGE exactly once, in its only error.
refused ()
{
    local image=$1 msg=$2
    shift 2
    assert_startup_refused --partial "$msg" \
        "$QCOW2_PLUGIN" file="$image" "$@" || return 1
    assert_equal "$(grep -cF -- "$msg" <<< "$output")" 1 || return 1
    assert_equal "$(grep -c 'error' <<< "$output")" 1
}

@test "encrypt: no passphrase" {
    make_encrypted luks "$img" 4M
    refused "$img" "the image is encrypted (LUKS): a passphrase is needed"
    make_encrypted aes "$img" 4M
    refused "$img" "the image is encrypted (AES): a passphrase is needed"
}

@test "encrypt: wrong passphrase" {
    make_encrypted luks "$img" 4M
    refused "$img" "the passphrase does not unlock any key slot" \
        passphrase=wrong
}

# set_luks_area IMAGE OFFSET LENGTH: rewrite the encryption header
# extension.
set_luks_area ()
{
    /usr/bin/python3 - "$@" <<'EOF'
import struct, sys
f = open(sys.argv[1], "r+b")
d = f.read(65536)
p = struct.unpack(">I", d[100:104])[0]
while True:
    magic, ln = struct.unpack(">II", d[p:p + 8])
    if magic == 0x0537be77:
        f.seek(p + 8)
        f.write(struct.pack(">QQ", int(sys.argv[2]), int(sys.argv[3])))
        break
    p += 8 + (ln + 7) // 8 * 8
EOF
}

@test "encrypt: damaged LUKS header" {
    local off len
    make_encrypted luks "$img" 4M
    read -r off len < <(luks_area "$img")
    printf 'XXXX' | dd of="$img" bs=1 seek="$off" conv=notrunc status=none
    refused "$img" "no LUKS1 header at offset $off" passphrase="$PASS"
}

@test "encrypt: LUKS header naming an unknown cipher" {
    local off len
    make_encrypted luks "$img" 4M
    read -r off len < <(luks_area "$img")
    printf 'twofish\0' | dd of="$img" bs=1 seek=$((off + 8)) conv=notrunc status=none
    refused "$img" 'cipher "twofish-xts-plain64" with a 512-bit key is not supported' \
        passphrase="$PASS"
}

@test "encrypt: LUKS key material outside the encryption header area" {
    local off len
    make_encrypted luks "$img" 4M
    read -r off len < <(luks_area "$img")
    set_luks_area "$img" "$off" 100000
    refused "$img" "lies beyond the end of the LUKS area (100000 bytes): is it truncated?" \
        passphrase="$PASS"
}

@test "encrypt: encryption header extension out of range or misaligned" {
    local off len
    make_encrypted luks "$img" 4M
    read -r off len < <(luks_area "$img")
    set_luks_area "$img" $((1 << 40)) "$len"
    refused "$img" "lies beyond the end of the file" passphrase="$PASS"
    set_luks_area "$img" $((off + 512)) "$len"
    refused "$img" "is not a multiple of the cluster size" passphrase="$PASS"
    set_luks_area "$img" "$off" 0
    refused "$img" "names an empty or misplaced area" passphrase="$PASS"
}

@test "encrypt: image truncated inside the LUKS area" {
    make_encrypted luks "$img" 4M
    truncate -s 600000 "$img"
    refused "$img" "lies beyond the end of the file" passphrase="$PASS"
}

@test "encrypt: a compressed cluster in an encrypted image is refused" {
    make_encrypted luks "$img" 4M
    qio "$img" -c "write -P 0x33 0 64k" -c "write -P 0x44 64k 64k"
    # Turn the first L2 entry into a compressed cluster descriptor.
    /usr/bin/python3 - "$img" <<'EOF'
import struct, sys
f = open(sys.argv[1], "r+b")
h = f.read(512)
cluster_bits = struct.unpack(">I", h[20:24])[0]
l1 = struct.unpack(">Q", h[40:48])[0]
f.seek(l1)
l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2)
host = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2)
f.write(struct.pack(">Q", (1 << 62) | host))
EOF
    start_nbdkit -r "$QCOW2_PLUGIN" file="$img" passphrase=+pass
    run /usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(65536, 65536) == b"\x44" * 65536
try:
    h.pread(512, 0)
except nbd.Error as e:
    sys.exit("refused: %s" % e)
' "$uri"
    assert_failure 1
    assert_output --partial "refused"
    assert_equal "$(grep -c "compressed cluster for guest offset 0 in an encrypted image" "$nbdkit_log")" 1
    server_alive "$nbdkit_pid"
}

@test "encrypt: passphrase from a file and a file descriptor; not logged" {
    make_encrypted luks "$img" 4M
    qio "$img" -c "write -P 0x42 0 1M"
    qemu_view "$img" qemu.raw
    start_nbdkit -r -v "$QCOW2_PLUGIN" file="$img" passphrase=+pass
    nbdcopy "$uri" ours.raw
    cmp qemu.raw ours.raw
    run grep -c "$PASS" "$nbdkit_log"
    assert_output 0
    cleanup_servers
    rm -f ours.raw
    nbdkit -r "$QCOW2_PLUGIN" file="$img" passphrase=-7 \
        --run 'nbdcopy "$uri" ours.raw' 7<pass
    cmp qemu.raw ours.raw
}
