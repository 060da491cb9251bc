#!/bin/bash
# Write speed of the qcow2 plugin, side by side with qemu-nbd (issue 10's
# write rows):
#
#   ours   nbdkit ./qcow2.so file=IMAGE
#   qemu   qemu-nbd --shared=0 -f qcow2 IMAGE   (any number of
#          connections; its defaults otherwise: writeback cache,
#          aio=threads)
#
# Rows:
#   copy      `nbdcopy --flush RAW URI` of a SIZE (1 GiB) raw file of
#             realistic data (bytes from /usr with zero runs, as
#             bench/read-bench.sh makes) into a fresh image; time until
#             nbdcopy returns, the flush included.  Checked once against
#             the raw file with `qemu-img compare`.
#   fresh     fio's nbd engine, 4 KiB random writes, iodepth 32, 2 jobs
#             (2 connections), RUNTIME seconds, into a fresh image of
#             ALLOC_SIZE (256 GiB: 4 Mi clusters of 64 KiB, so that a
#             run of 10 s at 40k IOPS still finds a new cluster for 19
#             writes in 20; the fraction that did is printed, from the
#             clusters the final image holds).  The file grows by a
#             cluster for each: up to 25 GiB of free disk.
#   falloc    the same on a PREALLOC_SIZE (4 GiB) image made with
#             preallocation=falloc (every write is in place) ...
#   metadata  ... and with preallocation=metadata (L2 entries point at
#             clusters that are holes in the file).
#   overlay   the same into a fresh overlay over a 64 KiB-cluster
#             backing image of OVERLAY_SIZE (12 GiB) full of data: every
#             allocation copies the rest of its cluster from the backing
#             file (at 10k IOPS, 4 writes in 5 allocate).  The backing
#             file is read into the page cache before each run, so the
#             row measures the servers, not the disk (the fresh row's
#             writes push it out).
#
# Servers alternate within each round and the order rotates; printed at
# the end: the median of each figure and the median and range of the
# per-round (per-pair) ratios, > 1 where ours is faster.
#
#   bench/write-bench.sh [ROUNDS]       (default $ROUNDS, else 3)
#
# Environment: ROUNDS; ROWS (suite.sh's row names: randwrite-fresh,
# randwrite-prealloc, randwrite-overlay; default all); RUNTIME (default 10); BUILDDIR (default: the top
# of the source tree) holds qcow2.so; WORKDIR (default bench/out) holds
# the raw data file (shared with read-bench.sh), the backing image and
# the scratch images; SIZE (default 1G); ALLOC_SIZE (default 256G);
# PREALLOC_SIZE (default 4G); OVERLAY_SIZE (default 12G); CLUSTER
# (default 64k).  Needs about 25 GiB of free disk while a fresh row
# runs, and OVERLAY_SIZE for the backing image (kept), which the
# overlay row wants in the page cache too.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-${ROUNDS:-3}}
size=${SIZE:-1G}
alloc_size=${ALLOC_SIZE:-256G}
prealloc_size=${PREALLOC_SIZE:-4G}
overlay_size=${OVERLAY_SIZE:-12G}
cluster=${CLUSTER:-65536}
runtime=${RUNTIME:-10}
plugin=$builddir/qcow2.so

raw=$workdir/data-$size.raw
img=$workdir/write-bench.qcow2
base=$workdir/write-bench-base-$overlay_size-$cluster.qcow2

for cmd in nbdkit qemu-nbd qemu-img nbdcopy fio; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd ||
    { echo "$0: this fio has no nbd engine" >&2; exit 1; }
test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
mkdir -p "$workdir"

# The same data as read-bench.sh: files under /usr repeated to fill the
# size, a zero MiB every 16 MiB.
make_raw ()
{
    local bytes tmp=$raw.tmp pass=0 mib
    bytes=$(numfmt --from=iec "$size")
    echo "making $raw ($size of data from /usr)" >&2
    rm -f "$tmp"
    while test "$(stat -c %s "$tmp" 2>/dev/null || echo 0)" -lt "$bytes"; do
        ((++pass <= 20)) || { echo "$0: not enough data under /usr" >&2; exit 1; }
        find /usr/lib /usr/share /usr/bin -type f -size +4k -print0 2>/dev/null |
            xargs -0 cat 2>/dev/null | head -c "$bytes" >>"$tmp" || true
    done
    truncate -s "$bytes" "$tmp"
    for ((mib = 8; mib < bytes / 1048576; mib += 16)); do
        dd if=/dev/zero of="$tmp" bs=1M seek="$mib" count=1 conv=notrunc status=none
    done
    mv "$tmp" "$raw"
}
test -f "$raw" || make_raw
cat "$raw" >/dev/null    # warm the page cache

tmp=$(mktemp -d)
server_pid=
cleanup ()
{
    test -z "$server_pid" || kill "$server_pid" 2>/dev/null || true
    rm -rf "$tmp" "$img"
}
trap cleanup EXIT

# start SERVER (ours, qemu) and stop.
# shellcheck source=bench/servers.sh
. "$here/servers.sh"

seconds_since () { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

# copy SERVER: result = seconds for nbdcopy --flush of the raw file
# into a fresh image.  (Functions set result rather than print it: a
# $(...) subshell would start the server out of cleanup's reach.)
copy ()
{
    local t0 t
    rm -f "$img"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$img" "$size"
    start "$1"
    t0=$(date +%s.%N)
    nbdcopy --flush "$raw" "$uri"
    result=$(seconds_since "$t0")
    stop
}

# new_image fresh|falloc|metadata|overlay: the image a fio row starts on.
new_image ()
{
    rm -f "$img"
    case "$1" in
    fresh)
        qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$img" "$alloc_size" ;;
    falloc|metadata)
        qemu-img create -q -f qcow2 -o cluster_size="$cluster",preallocation="$1" \
            "$img" "$prealloc_size" ;;
    overlay)
        cat "$base" >/dev/null
        qemu-img create -q -f qcow2 -o cluster_size="$cluster" \
            -b "$base" -F qcow2 "$img" ;;
    esac
}

# iops SERVER ROW: result = 4K random write IOPS (both jobs); for the
# allocating rows also sets allocated = the fraction of writes that
# allocated a cluster.
iops ()
{
    local before after
    new_image "$2"
    before=$(qemu-img map --output=json "$img" |
        /usr/bin/python3 -c "$count_clusters" "$cluster")
    start "$1"
    fio --name=randwrite --ioengine=nbd --uri="$uri" --rw=randwrite \
        --bs=4k --iodepth=32 --numjobs=2 --group_reporting \
        --runtime="$runtime" --time_based --randrepeat=0 \
        --output-format=json --output="$tmp/fio.json" >/dev/null
    stop
    qemu-img check -q "$img"
    after=$(qemu-img map --output=json "$img" |
        /usr/bin/python3 -c "$count_clusters" "$cluster")
    read -r result allocated < <(/usr/bin/python3 -c '
import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]
print("%.0f %.2f" % (w["iops"], (int(sys.argv[3]) - int(sys.argv[2])) / max(w["total_ios"], 1)))' \
        "$tmp/fio.json" "$before" "$after")
    rm -f "$img"
}

# Data clusters of the image itself (depth 0) in `qemu-img map` JSON.
count_clusters='
import json, sys
cs = int(sys.argv[1])
print(sum(m["length"] // cs for m in json.load(sys.stdin)
          if m["data"] and m["depth"] == 0))'

# ROWS (suite.sh's names) narrows the run; the nbdcopy row always runs.
rows=()
for key in ${ROWS:-randwrite-fresh randwrite-prealloc randwrite-overlay}; do
    case $key in
    randwrite-fresh) rows+=(fresh) ;;
    randwrite-prealloc) rows+=(falloc metadata) ;;
    randwrite-overlay) rows+=(overlay) ;;
    esac
done

# The backing image of the overlay row, once: data in every cluster.
if [[ " ${rows[*]} " == *" overlay "* ]] && ! test -f "$base"; then
    echo "making $base" >&2
    qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$base.tmp" "$overlay_size"
    # qemu-io writes at most 2 GiB per request: 1 GiB at a time.
    cmds=()
    bytes=$(numfmt --from=iec "$overlay_size")
    for ((off = 0; off < bytes; off += 1073741824)); do
        n=$((bytes - off < 1073741824 ? bytes - off : 1073741824))
        cmds+=(-c "write -P 0x5a $off $n")
    done
    qemu-io -f qcow2 "${cmds[@]}" "$base.tmp" >/dev/null
    mv "$base.tmp" "$base"
fi

# Once: both servers make an image that equals the raw file.
for s in ours qemu; do
    rm -f "$img"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster" "$img" "$size"
    start "$s"
    nbdcopy --flush "$raw" "$uri"
    stop
    qemu-img check -q "$img"
    qemu-img compare -q -f qcow2 -F raw "$img" "$raw" ||
        { echo "$0: $s: the copy differs from the raw file" >&2; exit 1; }
done

declare -A res frac
for ((r = 1; r <= rounds; r++)); do
    order=(ours qemu)
    ((r % 2)) || order=(qemu ours)
    for s in "${order[@]}"; do
        copy "$s";          res[copy-$s]+="$result "
        printf 'round %d  %-4s copy          %8.3f s\n' "$r" "$s" "$result"
        for row in "${rows[@]}"; do
            iops "$s" "$row"
            res[$row-$s]+="$result "
            frac[$row-$s]+="$allocated "
            printf 'round %d  %-4s iops %-9s %8d  (%s of writes allocated)\n' \
                "$r" "$s" "$row" "$result" "$allocated"
        done
    done
done

median () { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m () { median <<<"${res[$1]}"; }
# ratios NUM-KEY DEN-KEY: the per-round ratios NUM / DEN.
ratios ()
{
    paste -d' ' <(tr ' ' '\n' <<<"${res[$1]}" | grep -v '^$') \
        <(tr ' ' '\n' <<<"${res[$2]}" | grep -v '^$') |
        awk '{ printf "%.2f ", $1 / $2 }'
}
# summary RATIOS: "median  (min-max)".
summary ()
{
    local med
    med=$(median <<<"$1")
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g |
        awk -v m="$med" '{ a[NR] = $1 } END { printf "%5.2fx  (%.2f-%.2f)", m, a[1], a[NR] }'
}

mib=$(( $(numfmt --from=iec "$size") / 1048576 ))
echo
echo "medians of $rounds rounds ($cluster-byte clusters, fio runs of $runtime s;" \
    "fresh $alloc_size, falloc/metadata $prealloc_size, overlay $overlay_size):"
printf '  %-44s %10s %10s  %s\n' "" "ours" "qemu-nbd" "ratio (per-pair range)"
printf '  %-44s %8.3f s %8.3f s  %s\n' "nbdcopy --flush $size raw -> fresh qcow2" \
    "$(m copy-ours)" "$(m copy-qemu)" "$(summary "$(ratios copy-qemu copy-ours)")"
printf '  %-44s %6.0f MiB/s %6.0f MiB/s\n' "  (throughput)" \
    "$(awk -v a="$mib" -v b="$(m copy-ours)" 'BEGIN { print a / b }')" \
    "$(awk -v a="$mib" -v b="$(m copy-qemu)" 'BEGIN { print a / b }')"
for row in "${rows[@]}"; do
    printf '  %-44s %10d %10d  %s\n' "fio 4K randwrite QD32x2 IOPS, $row" \
        "$(m "$row-ours")" "$(m "$row-qemu")" \
        "$(summary "$(ratios "$row-ours" "$row-qemu")")"
done
for row in "${rows[@]}"; do
    test "$row" = fresh || test "$row" = overlay || continue
    printf '  %-44s %10s %10s\n' "  ($row: fraction of writes that allocated)" \
        "$(median <<<"${frac[$row-ours]}")" "$(median <<<"${frac[$row-qemu]}")"
done
echo "  (ratio > 1: ours is faster; copy ratio = qemu time / our time)"
