#!/bin/bash
# Read and write throughput of a LUKS1 volume (aes-xts-plain64, SIZE
# (1G) of random data) served three ways, side by side in one run:
#   ours    nbdkit file + this tree's luks filter (--filter=./luks2.so)
#   qemu    qemu-nbd --image-opts driver=luks (--shared=0, multi-conn)
#   system  nbdkit file + the system's nbdkit-luks-filter
# Rows (not in issue 10's table; bench/suite.sh prints them as extras):
#   luks-filter-read   nbdcopy export -> null:, MiB/s
#   luks-filter-write  nbdcopy --flush RAW -> export, MiB/s
# Servers alternate, the order rotating each round.
#
#   bench/luks-bench.sh [ROUNDS]      (default $ROUNDS, else 3)
#
# Environment: BUILDDIR, WORKDIR (bench/lib.sh); SIZE (1G); LUKS_FILTER
# (default BUILDDIR/luks2.so); ROWS (both rows).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-3}}
size=${SIZE:-1G}
ours=${LUKS_FILTER:-$builddir/luks2.so}
test -e "$ours" || { echo "$0: $ours not built (run make)" >&2; exit 1; }
export PATH=/usr/sbin:/usr/bin:$PATH
bench_need nbdkit qemu-nbd qemu-img nbdcopy nbdinfo

raw=$workdir/random-$size.raw
make_random_raw "$raw" "$size"
bytes=$(stat -c %s "$raw")
vol=$tmp/vol.luks
echo -n bench-pass > "$tmp/key"
echo "making a $size LUKS1 volume (qemu-img, aes-xts-plain64) ..." >&2
for i in 1 2 3 4 5; do
    rm -f "$vol"
    qemu-img convert -O luks --object secret,id=sec0,file="$tmp/key" \
        -o key-secret=sec0,iter-time=500 "$raw" "$vol" && break
done

serve ours nbdkit --filter="$ours" file "$vol" passphrase=+"$tmp/key"
serve qemu qemu --object secret,id=sec0,file="$tmp/key" \
    --image-opts driver=luks,key-secret=sec0,file.filename="$vol"
serve system nbdkit --filter=luks file "$vol" passphrase=+"$tmp/key"
# Every server unlocks on its first connection: do that before timing.
for s in ours qemu system; do nbdinfo --size "${nbd_uri[$s]}" >/dev/null; done

if want_row luks-filter-read; then
    read_once () { result=$(mibs "$bytes" "$(seconds nbdcopy "${nbd_uri[$1]}" null:)"); }
    echo "luks-filter-read: nbdcopy URI null: of a $size LUKS1 volume, MiB/s" >&2
    alternate "$rounds" read_once ours qemu system
    emit_row luks-filter-read "nbdcopy $size LUKS1 volume to null:" MiB/s
    emit_ceiling luks-filter-read "nbdkit's own luks filter" system MiB/s
    reset_results
fi
if want_row luks-filter-write; then
    write_once () { result=$(mibs "$bytes" "$(seconds nbdcopy --flush "$raw" "${nbd_uri[$1]}")"); }
    echo "luks-filter-write: nbdcopy --flush of $size into a LUKS1 volume, MiB/s" >&2
    alternate "$rounds" write_once ours qemu system
    emit_row luks-filter-write "nbdcopy --flush $size into a LUKS1 volume" MiB/s
    emit_ceiling luks-filter-write "nbdkit's own luks filter" system MiB/s
    reset_results
fi
