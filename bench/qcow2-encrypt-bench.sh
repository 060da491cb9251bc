#!/bin/bash
# A LUKS-encrypted qcow2 image (qcow2 crypt_method 2, aes-xts-plain64)
# of SIZE (1G) random data, side by side with qemu-nbd:
#
#   luks-read   `nbdcopy URI null:` of the whole image, MiB/s (page
#               cache warm), with the ceilings: nbdkit's file plugin on
#               the raw data, and nbdcopy of the raw file (no server)
#   luks-write  `nbdcopy --flush RAW URI` into a fresh, empty encrypted
#               image (allocation, encryption and metadata updates
#               included), MiB/s; only when ROWS names it
#
#   ours   nbdkit ./qcow2.so file=IMAGE passphrase=+FILE
#   qemu   qemu-nbd --shared=0 --image-opts driver=qcow2,encrypt.key-secret=...
#
# Servers alternate, the order rotating each round; prints each round,
# then the row lines bench/suite.sh collects.
#
#   bench/qcow2-encrypt-bench.sh [ROUNDS]      (default $ROUNDS, else 5)
#
# Environment: BUILDDIR, WORKDIR (bench/lib.sh); SIZE (1G); ROWS
# (default luks-read).

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-5}}
size=${SIZE:-1G}
ROWS=${ROWS:-luks-read}
pass=bench-passphrase
secret="secret,id=sec0,data=$pass"
bench_need nbdkit qemu-nbd qemu-img nbdcopy nbdsh

raw=$workdir/random-$size.raw
img=$workdir/luks-$size.qcow2
echo -n "$pass" > "$tmp/pass"

# qemu-img's PBKDF timing sometimes fails ("Unable to get accurate CPU
# usage"): retry.
retry ()
{
    local i
    for i in 1 2 3 4 5; do "$@" && return 0; done
    return 1
}

# new_image FILE: an empty encrypted image of SIZE.
new_image ()
{
    rm -f "$1"
    retry qemu-img create -q -f qcow2 --object "$secret" \
        -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 \
        "$1" "$size"
}

make_random_raw "$raw" "$size"
if ! test -f "$img"; then
    echo "making $img" >&2
    new_image "$img.tmp"
    qemu-img convert -n --object "$secret" -f raw "$raw" \
        --target-image-opts \
        "driver=qcow2,file.filename=$img.tmp,encrypt.key-secret=sec0"
    mv "$img.tmp" "$img"
fi
cat "$raw" "$img" >/dev/null   # warm the page cache
bytes=$(stat -c %s "$raw")

# serve_luks NAME IMAGE: ours or qemu on an encrypted IMAGE.
serve_luks ()
{
    case "$1" in
    ours) serve ours ours "$2" passphrase=+"$tmp/pass" ;;
    qemu) serve qemu qemu --object "$secret" \
              --image-opts "driver=qcow2,file.filename=$2,encrypt.key-secret=sec0" ;;
    esac
}

if want_row luks-read; then
    RO=1 serve_luks ours "$img"
    RO=1 serve_luks qemu "$img"
    RO=1 serve file file "$raw"
    same_data ours qemu file
    read_once ()
    {
        local src=$raw
        test "$1" = noserver || src=${nbd_uri[$1]}
        result=$(mibs "$bytes" "$(seconds nbdcopy "$src" null:)")
    }
    echo "luks-read: nbdcopy URI null: of an encrypted $size image, MiB/s" >&2
    alternate "$rounds" read_once ours qemu file noserver
    emit_row luks-read "nbdcopy $size encrypted to null:" MiB/s
    emit_ceiling luks-read "nbdkit file plugin, raw" file MiB/s
    emit_ceiling luks-read "nbdcopy raw file, no server" noserver MiB/s
    unserve ours; unserve qemu; unserve file
    reset_results
fi

if want_row luks-write; then
    write_once ()
    {
        new_image "$tmp/w.qcow2"
        serve_luks "$1" "$tmp/w.qcow2"
        result=$(mibs "$bytes" "$(seconds nbdcopy --flush "$raw" "${nbd_uri[$1]}")")
        unserve "$1"
    }
    echo "luks-write: nbdcopy --flush of $size into a fresh encrypted image, MiB/s" >&2
    alternate "$rounds" write_once ours qemu
    emit_row luks-write "nbdcopy --flush $size into a fresh encrypted image" MiB/s
    reset_results
fi
