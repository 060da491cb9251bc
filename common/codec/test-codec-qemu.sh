#!/bin/bash -
# Decode clusters written by qemu-img convert -c with our codec and
# compare them with the source data: proves the decoder reads what QEMU
# writes, for both compression types and cluster sizes 512 .. 2M.
#
# Then compress each cluster with codec-tool and check that QEMU's way of
# reading the payload (zlib, via python3) gives the data back.

set -e
set -u

QEMU_IMG="${QEMU_IMG:-qemu-img}"
if ! "$QEMU_IMG" --version >/dev/null 2>&1; then
    echo "$0: SKIP: qemu-img not found"
    exit 77
fi
if ! python3 -c 'import zlib' 2>/dev/null; then
    echo "$0: SKIP: python3 not found"
    exit 77
fi

srcdir="${srcdir:-.}"
tool="$PWD/codec-tool"
extract="$srcdir/qcow2-compressed-clusters.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Source data of SIZE bytes: machine code, text, zeroes, random (which
# QEMU stores uncompressed), in quarters.
make_raw ()
{
    local size=$1 q=$(( $1 / 4 ))
    {
        while :; do cat "$tool"; done | head -c $q
        seq 1 1000000 | sed 's/$/ cluster of a qcow2 image/' | head -c $q
        head -c $q /dev/zero
        head -c $q /dev/urandom
    } > "$tmp/raw"
}

checked=0
for type in zlib zstd; do
    for cluster_size in 512 4096 65536 2097152; do
        if [ $cluster_size -eq 2097152 ]; then size=$((8 << 20))
        else size=$(( cluster_size * 64 )); fi
        make_raw $size
        rm -rf "$tmp/payloads"; mkdir "$tmp/payloads"
        "$QEMU_IMG" convert -q -c -f raw -O qcow2 \
            -o cluster_size=$cluster_size,compression_type=$type \
            "$tmp/raw" "$tmp/img"
        read -r got_type got_cs < <(python3 "$extract" "$tmp/img" "$tmp/payloads")
        test "$got_type $got_cs" = "$type $cluster_size"

        n=0
        for f in "$tmp/payloads"/*.bin; do
            index=$(basename "$f" .bin)
            "$tool" d $type $cluster_size < "$f" > "$tmp/out"
            dd if="$tmp/raw" of="$tmp/expect" bs=$cluster_size \
               skip=$index count=1 status=none
            if ! cmp -s "$tmp/out" "$tmp/expect"; then
                echo "$0: $type $cluster_size: cluster $index differs"
                exit 1
            fi
            n=$((n + 1))
        done
        # The text and machine-code quarters must have been compressed.
        if [ $n -lt 2 ]; then
            echo "$0: $type $cluster_size: only $n compressed clusters"
            exit 1
        fi
        checked=$((checked + n))
    done
done
echo "decoded $checked clusters written by qemu-img"

# Our zlib-type output, read the way QEMU 7.2 reads it (one inflate call,
# raw deflate, 4 KiB window, Z_STREAM_END or Z_BUF_ERROR with a full
# buffer).
make_raw $((1 << 20))
cluster_size=65536
for level in -1 1 2 3 6 9; do
    for index in 0 4 8; do
        dd if="$tmp/raw" of="$tmp/cluster" bs=$cluster_size \
           skip=$index count=1 status=none
        "$tool" c zlib $cluster_size $level < "$tmp/cluster" > "$tmp/payload"
        test -s "$tmp/payload"
        python3 - "$tmp/payload" "$tmp/cluster" $cluster_size <<'PY'
import sys, zlib
payload = open(sys.argv[1], "rb").read()
expect = open(sys.argv[2], "rb").read()
d = zlib.decompressobj(-12)
out = d.decompress(payload, int(sys.argv[3]))
assert out == expect, "QEMU-style inflate gives different data"
PY
    done
done
echo "qemu-style inflate reads our zlib output at every level"
