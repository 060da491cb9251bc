#!/bin/bash
# Make a seed corpus for the qcow2 fuzzers: small valid images made by
# qemu-img and qemu-io (virtual size 1-4 MiB) covering the format's
# features, plus the hostile images of tests/make-bad-images.py.
#
#   tests/fuzz/make-seeds.sh OUTDIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A guest with some data, a zero run and an unallocated run.
raw=$tmp/guest.raw
/usr/bin/python3 - "$raw" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(2 << 20)
    f.seek(0); f.write(bytes(range(256)) * 64)          # 16 KiB
    f.seek(100 << 10); f.write(b"\x5a" * 3000)          # unaligned run
    f.seek(1 << 20); f.write(b"qcow2 fuzz seed " * 4096) # 64 KiB, compressible
PY

qi () { qemu-io -f qcow2 "$@" >/dev/null; }

n=0
seed () {                       # seed NAME OPTIONS [convert flags...]
    local name=$1 opts=$2; shift 2
    qemu-img convert -q "$@" -O qcow2 -o "$opts" "$raw" "$out/$name.qcow2"
    n=$((n + 1))
}

seed v3-512 cluster_size=512
seed v3-4k cluster_size=4096
seed v3-64k cluster_size=65536
seed v2-4k compat=0.10,cluster_size=4096
seed v2-512 compat=0.10,cluster_size=512
seed zlib-4k cluster_size=4096 -c
seed zlib-64k cluster_size=65536 -c
seed zstd-4k cluster_size=4096,compression_type=zstd -c
seed zstd-16k cluster_size=16384,compression_type=zstd -c
seed extl2-16k cluster_size=16384,extended_l2=on
seed extl2-64k-zstd cluster_size=65536,extended_l2=on,compression_type=zstd -c
seed lazy-4k cluster_size=4096,lazy_refcounts=on
seed refbits1-4k cluster_size=4096,refcount_bits=1
seed refbits64-4k cluster_size=4096,refcount_bits=64
seed refbits8-512 cluster_size=512,refcount_bits=8

# Preallocated metadata: a small one, every cluster is in the file.
qemu-img create -q -f qcow2 -o cluster_size=4096,preallocation=metadata \
    "$out/prealloc-4k.qcow2" 512K
n=$((n + 1))

# Zero clusters and subclusters, written by QEMU itself.
qi -c "write -z 16k 8k" -c "write -z 1032k 4k" "$out/v3-4k.qcow2"
qi -c "write -z 0 1k" -c "write -P 0x77 3k 1k" -c "write -z 65536 16k" \
    "$out/extl2-16k.qcow2"
qi -c "write -z 8k 4k" "$out/v2-4k.qcow2"

# Snapshots: the active layer differs from each.
for s in v3-4k extl2-16k zlib-4k; do
    cp "$out/$s.qcow2" "$out/snap-$s.qcow2"
    qemu-img snapshot -c one "$out/snap-$s.qcow2"
    qi -c "write -P 0x99 4k 12k" "$out/snap-$s.qcow2"
    qemu-img snapshot -c two "$out/snap-$s.qcow2"
    qi -c "write -P 0x98 512k 4k" "$out/snap-$s.qcow2"
    n=$((n + 1))
done

# A dirty image: lazy refcounts, killed before a clean close (the
# dirty bit is set by hand: qemu-io would clear it).
cp "$out/lazy-4k.qcow2" "$out/dirty-4k.qcow2"
printf '\x01' | dd of="$out/dirty-4k.qcow2" bs=1 seek=79 conv=notrunc status=none
n=$((n + 1))

# Backing file (never opened by the fuzzers: backing=none).
qemu-img create -q -f qcow2 -o cluster_size=4096 -b v3-4k.qcow2 -F qcow2 \
    "$out/overlay-4k.qcow2" 2M
qi -c "write -P 0x42 8k 4k" "$out/overlay-4k.qcow2"
n=$((n + 1))

# Backing files the fuzzers follow: the name "b" (the harness puts the
# image itself there, without its backing file name), as raw, as qcow2
# and probed; one with extended L2 and partly allocated subclusters.
for fmt in raw qcow2 probe; do
    o=$out/backing-b-$fmt.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$o" 1M
    qi -c "write -P 0x61 8k 4k" -c "write -z 16k 4k" "$o"
    qemu-img rebase -q -u -f qcow2 -b b -F "${fmt/probe/raw}" "$o"
    if test $fmt = probe; then  # unknown extension: no recorded format
        /usr/bin/python3 -c '
import sys
f = open(sys.argv[1], "r+b"); c = f.read(4096)
f.seek(c.index(bytes.fromhex("e2792aca"))); f.write(bytes.fromhex("12345678"))
' "$o"
    fi
    n=$((n + 1))
done
o=$out/backing-b-extl2.qcow2
qemu-img create -q -f qcow2 -o cluster_size=16384,extended_l2=on "$o" 1M
qi -c "write -P 0x62 1k 2k" -c "write -z 40k 1k" "$o"
qemu-img rebase -q -u -f qcow2 -b b -F qcow2 "$o"
n=$((n + 1))

# External data file (the fuzzers give the input itself as the file).
qemu-img create -q -f qcow2 -o cluster_size=4096,data_file=$tmp/data.raw \
    "$out/datafile-4k.qcow2" 1M
qi -c "write -P 0x24 0 8k" "$out/datafile-4k.qcow2"
n=$((n + 1))

# Legacy AES encryption (the fuzzers pass the passphrase "fuzz").
if qemu-img convert -q --object secret,id=s0,data=fuzz -O qcow2 \
       -o encrypt.format=aes,encrypt.key-secret=s0,cluster_size=4096 \
       "$raw" "$out/aes-4k.qcow2" 2>/dev/null; then
    n=$((n + 1))
fi

# qcow version 1.
qemu-img convert -q -O qcow "$raw" "$out/qcow1.qcow"
# qemu-img 7.2 exits 1 after writing a compressed qcow image.
qemu-img convert -q -c -O qcow "$raw" "$out/qcow1-zlib.qcow" || true
n=$((n + 2))

# The hostile images of the bats tests, from their good images.
qemu-img create -q -f qcow2 -o cluster_size=4096 "$tmp/g3" 8M
qi -c "write -P 0x11 0 8k" -c "write -P 0x22 64k 4k" \
    -c "write -P 0x33 2M 8k" -c "write -P 0x44 4M 4k" "$tmp/g3"
qemu-img create -q -f qcow2 -o cluster_size=65536,extended_l2=on "$tmp/gx" 8M
qi -c "write -P 0x55 0 128k" "$tmp/gx"
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 "$tmp/g2" 8M
qi -c "write -P 0x66 0 64k" "$tmp/g2"
/usr/bin/python3 "$here/../make-bad-images.py" "$tmp/g3" "$tmp/gx" "$tmp/g2" \
    "$tmp/bad" >/dev/null
for f in "$tmp"/bad/*.qcow2; do
    cp "$f" "$out/bad-$(basename "$f")"
    n=$((n + 1))
done
# Images whose refcounts or mappings lie about the metadata, for the
# write path (see craft-seeds.py).
/usr/bin/python3 "$here/craft-seeds.py" --good "$tmp/rc"
n=$((n + $(/usr/bin/python3 "$here/craft-seeds.py" "$tmp/rc" "$out" | wc -l)))

echo "$n seeds in $out ($(du -sh "$out" | cut -f1))"
