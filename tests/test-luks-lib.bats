#!/usr/bin/env bats
# common/luks against QEMU, through luks-tool (common/luks/luks-tool.c):
#  (d) a LUKS1 header made by luks_format is opened by qemu-img/qemu-io;
#  (a)+(b) the LUKS1 header embedded in an encrypted qcow2 image made by
#      qemu-img unlocks at its offset, and sectors decrypt with the host
#      offset as IV;
#  (c) legacy qcow2 AES sectors decrypt with the guest offset as IV.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

setup ()
{
    requires qemu-img qemu-io
    test -x "$LUKS_TOOL" || skip "luks-tool was not built"
    cd "$BATS_TEST_TMPDIR"
}

# host_offset IMAGE GUEST_OFFSET: where a guest byte of a qcow2 image is
# stored (walks L1/L2: qemu-img map hides offsets of encrypted images).
host_offset ()
{
    /usr/bin/python3 - "$1" "$2" <<'PYEOF'
import struct, sys
f = open(sys.argv[1], "rb"); g = int(sys.argv[2])
hdr = f.read(72)
cb = struct.unpack(">I", hdr[20:24])[0]
l1 = struct.unpack(">Q", hdr[40:48])[0]
mask = 0x00fffffffffffe00
f.seek(l1 + 8 * (g >> (2 * cb - 3)))
l2 = struct.unpack(">Q", f.read(8))[0] & mask
f.seek(l2 + 8 * ((g >> cb) & ((1 << (cb - 3)) - 1)))
print((struct.unpack(">Q", f.read(8))[0] & mask) + (g & ((1 << cb) - 1)))
PYEOF
}

# crypt_header IMAGE: "OFFSET LENGTH" of the qcow2 encryption header
# (header extension 0x0537be77).
crypt_header ()
{
    /usr/bin/python3 - "$1" <<'PYEOF'
import struct, sys
f = open(sys.argv[1], "rb")
hdr = f.read(104)
off = struct.unpack(">I", hdr[100:104])[0]
f.seek(off)
while True:
    magic, length = struct.unpack(">II", f.read(8))
    if magic == 0:
        sys.exit("no encryption header extension")
    data = f.read((length + 7) & ~7)
    if magic == 0x0537be77:
        print(*struct.unpack(">QQ", data[:16]))
        break
PYEOF
}

@test "luks lib (d): qemu-io reads and writes a LUKS1 volume made by luks_format" {
    "$LUKS_TOOL" format vol pass 4194304 1000
    cryptsetup luksDump vol | grep -q "Cipher mode:.*xts-plain64"
    # Fresh volume reads as zeroes through QEMU.
    qemu-img convert --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image vol)" -O raw qemu.raw
    cmp qemu.raw <(head -c 4M /dev/zero)
    # QEMU writes, our library decrypts; our library writes, QEMU reads.
    qemu-io --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image vol)" -c 'write -P 0x5a 4096 8192' >/dev/null
    read -r off len sector < <(luks_payload vol pass)
    assert_equal "$len $sector" "4194304 512"
    "$LUKS_TOOL" read vol pass $((off + 4096)) 8192 8 > got
    cmp got <(head -c 8192 /dev/zero | tr '\0' '\132')
    make_plain data 65536
    "$LUKS_TOOL" write vol pass $((off + 1048576)) 2048 < data
    qemu-img convert --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image vol)" -O raw qemu.raw
    cmp <(cut_bytes qemu.raw 1048576 65536 /dev/stdout) data
}

@test "luks lib (d): aes-cbc-essiv:sha256 with sha1 headers open in qemu" {
    "$LUKS_TOOL" format vol pass 1048576 1000 aes cbc-essiv:sha256 32 sha1
    qemu-io --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image vol)" -c 'read -P 0 0 1M' >/dev/null
    run qemu-io --object "$(qemu_luks_secret wrong)" --image-opts \
        "$(qemu_luks_image vol)" -c 'read 0 512'
    assert_failure
    assert_output --partial "Invalid password"
}

@test "luks lib (a)+(b): LUKS1 header inside a qcow2 image, host-offset IVs" {
    local i img=enc.qcow2
    for i in 1 2 3 4 5; do
        rm -f $img
        qemu-img create -q -f qcow2 --object secret,id=sec0,data=pass \
            -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=500 \
            $img 4M && break
    done
    qemu-io --object secret,id=sec0,data=pass --image-opts \
        "driver=qcow2,encrypt.key-secret=sec0,file.filename=$img" \
        -c 'write -P 0xab 64k 64k' -c 'write -P 0xcd 1M 4k' >/dev/null
    read -r hoff hlen < <(crypt_header $img)
    h1=$(host_offset $img 65536)
    h2=$(host_offset $img 1048576)
    "$LUKS_TOOL" -e -o "$hoff" -l "$hlen" read $img pass "$h1" 65536 $((h1 / 512)) > got
    cmp got <(head -c 65536 /dev/zero | tr '\0' '\253')
    "$LUKS_TOOL" -e -o "$hoff" -l "$hlen" read $img pass "$h2" 4096 $((h2 / 512)) > got
    cmp got <(head -c 4096 /dev/zero | tr '\0' '\315')
    # The guest offset is not the IV: decrypting with it gives noise.
    "$LUKS_TOOL" -e -o "$hoff" -l "$hlen" read $img pass "$h1" 512 128 > got
    run cmp -s got <(head -c 512 /dev/zero | tr '\0' '\253')
    assert_failure 1
    # Wrong passphrase, and a header area cut short, are refused.
    run "$LUKS_TOOL" -e -o "$hoff" -l "$hlen" read $img wrong "$h1" 512 0
    assert_failure
    assert_output --partial "passphrase does not unlock"
    run "$LUKS_TOOL" -e -o "$hoff" -l 65536 read $img pass "$h1" 512 0
    assert_failure
    assert_output --partial "truncated"
}

@test "luks lib (c): legacy qcow2 AES, guest-offset IVs" {
    local img=aes.qcow2
    qemu-img create -q -f qcow2 --object secret,id=sec0,data=my-longer-passphrase \
        -o encrypt.format=aes,encrypt.key-secret=sec0 $img 4M
    qemu-io --object secret,id=sec0,data=my-longer-passphrase --image-opts \
        "driver=qcow2,encrypt.key-secret=sec0,file.filename=$img" \
        -c 'write -P 0x77 192k 64k' >/dev/null
    h=$(host_offset $img 196608)
    [ "$h" -ne 196608 ]
    "$LUKS_TOOL" aes-read $img my-longer-passphrase "$h" 65536 $((196608 / 512)) > got
    cmp got <(head -c 65536 /dev/zero | tr '\0' '\167')
}
