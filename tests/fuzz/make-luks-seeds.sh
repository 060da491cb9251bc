#!/bin/bash
# Make the seed corpus of the LUKS fuzzers (README): volumes made by
# cryptsetup and qemu-img, all with the passphrase "fuzz" on some key
# slot and cheap key derivation, so that unlocking runs to the end.
#
#   tests/fuzz/make-luks-seeds.sh luks OUTDIR        (fuzz-luks)
#   tests/fuzz/make-luks-seeds.sh qcow2-luks OUTDIR  (fuzz-qcow2-luks)
#
# A LUKS volume is mostly key material (4000 stripes of the key per
# slot) and payload, so seeds are kept small: short keys, small LUKS2
# metadata and keyslot areas, the payload cut to a few sectors, and the
# key material of LUKS1 slots packed together (LUKS1 has no checksum:
# the slots' material offsets and the payload offset are rewritten).
set -euo pipefail

kind=$1 out=$2
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=$tmp/pass other=$tmp/other
printf fuzz > "$pass"
printf other > "$other"

# Random payload bytes: what they decrypt to does not matter, only that
# the harness decrypts and encrypts them back.
payload () {                    # payload FILE OFFSET BYTES
    truncate -s "$2" "$1"
    head -c "$3" /dev/urandom >> "$1"
}

# LUKS1: pack the active slots' material after the header, 4 KiB
# aligned as cryptsetup does, the payload (its first 8 KiB) after them.
pack_luks1 () {                 # pack_luks1 FILE
    /usr/bin/python3 - "$1" <<'PY'
import struct, sys
path = sys.argv[1]
d = bytearray(open(path, "rb").read())
key_bytes = struct.unpack_from(">I", d, 108)[0]
area = -(-key_bytes * 4000 // 4096) * 4096
payload = struct.unpack_from(">I", d, 104)[0] * 512
out = bytearray(d[:4096])
for i in range(8):
    ks = 208 + 48 * i
    if struct.unpack_from(">I", d, ks)[0] != 0x00AC71F3:
        continue
    old = struct.unpack_from(">I", d, ks + 40)[0] * 512
    struct.pack_into(">I", out, ks + 40, len(out) // 512)
    out += d[old:old + area]
struct.pack_into(">I", out, 104, len(out) // 512)
out += d[payload:payload + 8192]
open(path, "wb").write(out)
PY
}

luks1 () {                      # luks1 NAME CRYPTSETUP-OPTIONS...
    local f=$tmp/$1; shift
    truncate -s 4M "$f"
    cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 \
        "$@" -d "$pass" "$f"
    payload "$f" "$(( $(cryptsetup luksDump "$f" |
                       awk '/^Payload offset/ { print $3 }') * 512 ))" 8192
}

luks2 () {                      # luks2 NAME SLOTS CRYPTSETUP-OPTIONS...
    local f=$tmp/$1 slots=$2; shift 2
    local offset=$(( 32768 + slots * 131072 ))
    truncate -s $(( offset + 8192 )) "$f"
    cryptsetup luksFormat -q --type luks2 --luks2-metadata-size 16k \
        --luks2-keyslots-size $(( slots * 128 ))k --offset $(( offset / 512 )) \
        "$@" -d "$pass" "$f"
    payload "$f" "$offset" 8192
}

# iter-time=1 keeps the iterations under kdf-cap.c's cap; QEMU's
# benchmark sometimes cannot time so short a run, so try again.
qemu_img_fast () {              # qemu_img_fast ARGS... (with ITER for 1)
    local ms
    for ms in 1 1 1 1 2 2 3 3; do
        if (qemu-img "${@//ITER/$ms}" 2>/dev/null); then return 0; fi
    done
    qemu-img "${@//ITER/5}"
}

qemu_luks () {                  # qemu_luks NAME QEMU-IMG-OPTIONS
    qemu_img_fast create -q -f luks --object secret,id=s,data=fuzz \
        -o "key-secret=s,iter-time=ITER,$2" "$tmp/$1" 16k
}

pbkdf2=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
argon2=(--pbkdf-memory 32 --pbkdf-force-iterations 4 --pbkdf-parallel 1)

case $kind in
luks)
    luks1 v1-aes-cbc-essiv --cipher aes-cbc-essiv:sha256 --key-size 128 \
        --hash sha256
    pack_luks1 "$tmp/v1-aes-cbc-essiv"
    # Two slots: the first does not take "fuzz", the second does.
    luks1 v1-aes-xts-2slots --cipher aes-xts-plain64 --key-size 256 \
        --hash sha1
    cryptsetup luksChangeKey -q --pbkdf-force-iterations 1000 \
        -d "$pass" "$tmp/v1-aes-xts-2slots" "$other"
    cryptsetup luksAddKey -q --pbkdf-force-iterations 1000 \
        -d "$other" "$tmp/v1-aes-xts-2slots" "$pass"
    pack_luks1 "$tmp/v1-aes-xts-2slots"
    luks1 v1-camellia-cbc-plain64 --cipher camellia-cbc-plain64 \
        --key-size 128 --hash sha512
    pack_luks1 "$tmp/v1-camellia-cbc-plain64"
    luks1 v1-aes-cbc-plain-sha224 --cipher aes-cbc-plain --key-size 192 \
        --hash sha224
    pack_luks1 "$tmp/v1-aes-cbc-plain-sha224"
    qemu_luks v1-qemu-aes-128-cbc-plain64 \
        cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=plain64,hash-alg=sha1
    pack_luks1 "$tmp/v1-qemu-aes-128-cbc-plain64"
    qemu_luks v1-qemu-aes-128-xts cipher-alg=aes-128,cipher-mode=xts
    pack_luks1 "$tmp/v1-qemu-aes-128-xts"

    luks2 v2-pbkdf2-aes-xts 1 "${pbkdf2[@]}" --cipher aes-xts-plain64 \
        --key-size 256 --hash sha256
    luks2 v2-argon2id-aes-cbc-essiv 1 --pbkdf argon2id "${argon2[@]}" \
        --cipher aes-cbc-essiv:sha256 --key-size 128 --label fuzz \
        --subsystem seed
    # Two slots, the second preferred and argon2i; a token.
    luks2 v2-2slots-token 2 "${pbkdf2[@]}" --cipher aes-cbc-plain64 \
        --key-size 128 --hash sha512
    cryptsetup luksAddKey -q --pbkdf argon2i "${argon2[@]}" \
        -d "$pass" "$tmp/v2-2slots-token" "$pass"
    cryptsetup config --priority prefer --key-slot 1 "$tmp/v2-2slots-token"
    echo '{"type":"fuzz-token","keyslots":["0"],"note":"seed"}' |
        cryptsetup token import "$tmp/v2-2slots-token"
    # 4 KiB sectors, a keyslot area cipher of its own.
    luks2 v2-camellia-4k 1 "${pbkdf2[@]}" --cipher camellia-cbc-plain64 \
        --key-size 128 --sector-size 4096 --keyslot-cipher aes-cbc-plain64 \
        --keyslot-key-size 256
    # Only the secondary header is valid.
    cp "$tmp/v2-pbkdf2-aes-xts" "$tmp/v2-secondary-only"
    printf 'XXXX' | dd of="$tmp/v2-secondary-only" conv=notrunc status=none
    # What cryptsetup writes only with root (reencryption, integrity) or
    # never: the JSON edited, the checksums made again.
    /usr/bin/python3 - "$tmp/v2-pbkdf2-aes-xts" "$tmp" <<'PY'
import hashlib, json, struct, sys
src, outdir = sys.argv[1], sys.argv[2]
base = open(src, "rb").read()
hdr_size = struct.unpack_from(">Q", base, 8)[0]
md = json.loads(base[4096:hdr_size].split(b"\0")[0])

def write(name, meta, length=len(base)):
    d = bytearray(base)
    text = json.dumps(meta, separators=(",", ":")).encode()
    for rel in (0, hdr_size):
        d[rel + 4096:rel + hdr_size] = text.ljust(hdr_size - 4096, b"\0")
        d[rel + 448:rel + 512] = bytes(64)
        d[rel + 448:rel + 480] = hashlib.sha256(d[rel:rel + hdr_size]).digest()
    open(f"{outdir}/v2-{name}", "wb").write(d[:length])

def edited(change):
    m = json.loads(json.dumps(md))
    change(m)
    return m

write("reencrypt-required", edited(lambda m: m["config"].update(
    requirements={"mandatory": ["online-reencrypt-v2"]})))
write("two-segments", edited(lambda m: m["segments"].update(
    {"1": dict(m["segments"]["0"], offset="262144", size="dynamic")})))
write("integrity", edited(lambda m: m["segments"]["0"].update(
    integrity={"type": "hmac(sha256)", "journal_encryption": "none",
               "journal_integrity": "none"})))
write("reencrypt-keyslot", edited(lambda m: m["keyslots"].update(
    {"1": {"type": "reencrypt", "mode": "reencrypt", "direction": "forward",
           "key_size": 1, "area": {"type": "checksum", "offset": "163840",
           "size": "4096", "hash": "sha256", "sector_size": 512}}})))
write("fixed-size-iv-tweak", edited(lambda m: m["segments"]["0"].update(
    size="4096", iv_tweak="1000", flags=["allow-discards"])))
write("keyslot-token", edited(lambda m: m["tokens"].update(
    {"0": {"type": "luks2-keyring", "keyslots": ["0"],
           "key_description": "fuzz"}})))
write("headers-only", md, 2 * hdr_size)
PY
    ;;
qcow2-luks)
    raw=$tmp/guest.raw
    /usr/bin/python3 - "$raw" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 20)
    f.seek(0); f.write(bytes(range(256)) * 32)          # 8 KiB
    f.seek(70 << 10); f.write(b"\x5a" * 3000)           # unaligned run
    f.seek(512 << 10); f.write(b"qcow2 luks seed " * 512)
PY
    qcow2 () {                  # qcow2 NAME OPTIONS
        qemu_img_fast convert -q -f raw --object secret,id=s,data=fuzz -O qcow2 \
            -o "encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=ITER,$2" \
            "$raw" "$out/$1.qcow2"
    }
    qcow2 aes-128-cbc-essiv-4k \
        cluster_size=4096,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256
    qcow2 aes-128-xts-512 \
        cluster_size=512,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=xts,encrypt.hash-alg=sha1
    qcow2 aes-128-cbc-plain64-16k \
        cluster_size=16384,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain64
    qemu-img snapshot --object secret,id=s,data=fuzz -c one --image-opts \
        "driver=qcow2,file.filename=$out/aes-128-cbc-essiv-4k.qcow2,encrypt.key-secret=s"
    ;;
*)
    echo "$0: unknown kind $kind (luks, qcow2-luks)" >&2
    exit 1
    ;;
esac
if test "$kind" = luks; then
    mv "$tmp"/v[12]-* "$out"/
fi
echo "$(ls "$out" | wc -l) seeds in $out ($(du -sh "$out" | cut -f1))"
