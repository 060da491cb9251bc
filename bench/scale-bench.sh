#!/bin/bash
# Reads of large and layered images, against qemu-nbd (issue 10,
# "Scale"), and the servers' memory with many connections:
#
#   sparse  a 1 TiB image holding 1 GiB of random data in 1024 runs of
#           1 MiB scattered over the whole range (64K clusters, default
#           l2-cache-size: 32 MiB of the 128 MiB of L2 tables it would
#           need, so tables are evicted)
#   chain   the same runs spread over a chain of 17 images (the top and
#           16 backing files below it, the default max-chain-depth):
#           run i lives in layer i mod 17
#   flat    the same 1 GiB of data densely in a 1 GiB image: the
#           reference the two above are measured against
#
# Each row is `nbdcopy URI null:` (which reads only what block status
# says is data), ours (nbdkit -r qcow2.so), qemu-nbd -r and nbdkit's
# file plugin on the raw data, every server of every image once a round,
# the order rotating (bench/lib.sh alternate), ROUNDS rounds.  Printed: the median of each, the
# median of the per-pair ratios (qemu-nbd time / ours) with their
# range, and ours against ours on the flat image of the same round.
# Then the peak and current RSS (VmHWM, VmRSS) of each server on the
# chain with 1, 16 and 64 connections reading (parallel-reads.py: a
# fixed number of 256 KiB reads of the data, 16 in flight on each).
#
#   bench/scale-bench.sh [ROUNDS]          (default 5, or $ROUNDS)
#
# Environment: BUILDDIR, WORKDIR (bench/lib.sh); NBDKIT_ARGS (default
# none) are added to our server's command line (e.g. "-t 4": nbdkit's
# 16 threads a connection cost CPU in wake-ups); SCALE_RUNS (default
# 1024: the runs of 1 MiB; bench/suite.sh --self-check uses 32).
# WORKDIR keeps the images between runs (3 GiB of disk at the default;
# the 1 TiB ones are sparse).  Images are made only with
# qemu-img, from raw files written here, and checked: each server's
# map of each image equals qemu-nbd's.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
rounds=${1:-${ROUNDS:-5}}
layers=17
# Other counts of runs than the default keep their images apart.
runs=${SCALE_RUNS:-1024}
if ((runs < 1 || runs > 1048576)); then
    echo "$0: SCALE_RUNS ($runs) must be 1 to 1048576" >&2
    exit 1
fi
if ((runs == 1024)); then
    dir=$workdir/scale data="1 GiB"
else
    dir=$workdir/scale-$runs data="$runs MiB"
fi
bench_need nbdkit qemu-nbd qemu-img nbdcopy nbdinfo
mkdir -p "$dir"

# write_raw OUT SIZE LAYER: a sparse raw file of SIZE bytes with the
# runs of LAYER (all: every run; flat: every run, densely).  Run i is
# 1 MiB of seeded random bytes; where it goes is seeded too, so every
# image holds the same data.
write_raw ()
{
    rm -f "$1"
    truncate -s "$2" "$1"
    python3 - "$1" "$3" "$layers" "$runs" <<'EOF'
import random, sys
out, layer, layers, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MiB = 1 << 20
slots = sorted(random.Random(1).sample(range(1 << 20), runs))  # 1 TiB
with open(out, "r+b") as f:
    for i in range(runs):
        if layer not in ("all", "flat") and i % layers != int(layer):
            continue
        f.seek((i if layer == "flat" else slots[i]) * MiB)
        f.write(random.Random(1000 + i).randbytes(MiB))
EOF
}

# to_qcow2 RAW QCOW2 [BACKING]: qemu-img converts, then names the
# backing file without touching the data (rebase -u).
to_qcow2 ()
{
    qemu-img convert -f raw -O qcow2 -o cluster_size=65536 "$1" "$2.tmp"
    if test -n "${3:-}"; then
        qemu-img rebase -u -f qcow2 -b "$(basename "$3")" -F qcow2 "$2.tmp"
    fi
    mv "$2.tmp" "$2"
}

# The raw files stay: nbdkit's file plugin on them is the ceiling.
for im in flat sparse; do
    test -f "$dir/$im.qcow2" && test -f "$dir/$im.raw" && continue
    echo "making $dir/$im.raw and $dir/$im.qcow2" >&2
    if test $im = flat; then write_raw "$dir/$im.raw" "${runs}M" flat
    else write_raw "$dir/$im.raw" 1T all; fi
    to_qcow2 "$dir/$im.raw" "$dir/$im.qcow2"
done
if ! test -f "$dir/chain-$((layers - 1)).qcow2"; then
    prev=
    for ((k = 0; k < layers; k++)); do
        echo "making $dir/chain-$k.qcow2" >&2
        write_raw "$dir/chain-$k.raw" 1T "$k"
        to_qcow2 "$dir/chain-$k.raw" "$dir/chain-$k.qcow2" "$prev"
        rm -f "$dir/chain-$k.raw"
        prev=$dir/chain-$k.qcow2
    done
fi
images=(sparse chain flat)
declare -A file=([sparse]=$dir/sparse.qcow2
                 [chain]=$dir/chain-$((layers - 1)).qcow2
                 [flat]=$dir/flat.qcow2)
declare -A raw=([sparse]=$dir/sparse.raw [chain]=$dir/sparse.raw
                [flat]=$dir/flat.raw)
# Warm the page cache (the sparse raw file by the warm-up round below:
# reading it whole would read 1 TiB of holes).
cat "$dir"/*.qcow2 "$dir/flat.raw" >/dev/null

for im in "${images[@]}"; do
    RO=1 serve "ours-$im" ours "${file[$im]}"
    RO=1 serve "qemu-$im" qemu -f qcow2 "${file[$im]}"
    RO=1 serve "file-$im" file "${raw[$im]}"
    nbdinfo --map "${nbd_uri[ours-$im]}" >"$tmp/ours-$im.map"
    nbdinfo --map "${nbd_uri[qemu-$im]}" >"$tmp/qemu-$im.map"
    cmp -s "$tmp/ours-$im.map" "$tmp/qemu-$im.map" || {
        echo "$0: the maps of $im differ (ours, qemu-nbd):" >&2
        diff "$tmp/ours-$im.map" "$tmp/qemu-$im.map" | head >&2
        exit 1
    }
done

# read_once NAME (alternate's FN): result = the seconds of one full read.
read_once () { result=$(seconds nbdcopy "${nbd_uri[$1]}" null:); }

names=()
for im in "${images[@]}"; do names+=("ours-$im" "qemu-$im" "file-$im"); done
for n in "${names[@]}"; do read_once "$n"; done            # warm-up
alternate "$rounds" read_once "${names[@]}"

label ()
{
    case $1 in
    sparse) echo "1 TiB sparse, $data data" ;;
    chain) echo "$layers-image chain, 1 TiB" ;;
    flat) echo "flat $data (reference)" ;;
    esac
}
echo
echo "nbdcopy URI null:, $rounds rounds (ours, qemu-nbd and nbdkit's file plugin"
echo "on the same data as a raw file, 1 TiB sparse or $data, the order rotating);"
echo "medians [per-round range]; speedup = qemu-nbd time / ours; vs flat = ours /"
echo "ours on the flat image in the same round"
printf '  %-26s %7s %7s %7s %19s %19s\n' row ours qemu-nbd file speedup "vs flat"
for im in "${images[@]}"; do
    read -r sp slo shi < <(pair_stats "qemu-$im" "ours-$im")
    read -r vf vlo vhi < <(pair_stats "ours-$im" ours-flat)
    printf '  %-26s %6.2fs %6.2fs %6.2fs %6.2fx [%.2f-%.2f] %6.2fx [%.2f-%.2f]\n' \
        "$(label "$im")" "$(med_of "ours-$im")" "$(med_of "qemu-$im")" \
        "$(med_of "file-$im")" "$sp" "$slo" "$shi" "$vf" "$vlo" "$vhi"
done
read -r cs clo chi < <(pair_stats ours-chain ours-sparse)
printf '  the chain against the same data in one image (ours / ours on sparse): %.2fx [%.2f-%.2f]\n' \
    "$cs" "$clo" "$chi"

# The lines bench/suite.sh collects: speedups over qemu-nbd, and ours
# against the flat image and the raw file.
for im in sparse chain; do
    row_ours=ours-$im row_qemu=qemu-$im emit_row "scale-$im" "nbdcopy to null: of $(label "$im")" s
    row_ours=ours-$im emit_ceiling "scale-$im" "flat $data image, same data, ours" ours-flat s
    row_ours=ours-$im emit_ceiling "scale-$im" "raw data via nbdkit file" "file-$im" s
done

echo
echo "the servers' CPU seconds per copy (utime + stime; load does not inflate them)"
printf '  %-26s %7s %7s %7s %19s\n' row ours qemu-nbd file "ours vs flat"
for im in "${images[@]}"; do
    read -r vf vlo vhi < <(pair_stats "cpu:ours-$im" cpu:ours-flat)
    printf '  %-26s %6.2fs %6.2fs %6.2fs %6.2fx [%.2f-%.2f]\n' \
        "$(label "$im")" "$(med_of "cpu:ours-$im")" "$(med_of "cpu:qemu-$im")" \
        "$(med_of "cpu:file-$im")" "$vf" "$vlo" "$vhi"
done

# Memory: a fresh server of each kind on the chain, N connections
# reading, then its VmHWM and VmRSS.
for n in "${names[@]}"; do unserve "$n"; done
status_kib () { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }
echo
echo "RSS on the chain: 256 KiB reads of the data, 16 in flight per connection"
printf '  %-12s %12s %12s %12s %12s\n' connections "ours HWM" "ours RSS" "qemu HWM" "qemu RSS"
for n in 1 16 64; do
    line=
    for s in ours qemu; do
        case $s in
        ours) RO=1 serve rss ours "${file[chain]}" ;;
        qemu) RO=1 serve rss qemu -f qcow2 "${file[chain]}" ;;
        esac
        python3 "$top/tests/parallel-reads.py" "${nbd_uri[rss]}" "$n" 64 >/dev/null
        line+=$(printf ' %9d KiB %9d KiB' "$(status_kib VmHWM "${spid[rss]}")" \
            "$(status_kib VmRSS "${spid[rss]}")")
        unserve rss
    done
    printf '  %-12s%s\n' "$n" "$line"
done
