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
# says is data), ours (nbdkit -r qcow2.so) and qemu-nbd -r alternating
# (A B, then B A), ROUNDS pairs.  Printed: the median of each, the
# median of the per-pair ratios (qemu-nbd time / ours) with their
# range, and ours against ours on the flat image of the same round.
# Then the peak and current RSS (VmHWM, VmRSS) of each server on the
# chain with 1, 16 and 64 connections reading (parallel-reads.py: a
# fixed number of 256 KiB reads of the data, 16 in flight on each).
#
#   bench/scale-bench.sh [ROUNDS]          (default 5, or $ROUNDS)
#
# Environment: BUILDDIR (default the top of the tree) holds qcow2.so;
# NBDKIT_ARGS (default none) are added to our server's command line
# (e.g. "-t 4": nbdkit's 16 threads a connection cost CPU in wake-ups);
# WORKDIR (default bench/out) keeps the images between runs (3 GiB of
# disk; the 1 TiB ones are sparse).  Images are made only with
# qemu-img, from raw files written here, and checked: each server's
# map of each image equals qemu-nbd's.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-${ROUNDS:-5}}
plugin=$builddir/qcow2.so
layers=17
dir=$workdir/scale

# nbdsh and python's nbd module need the system python3.
export PATH=/usr/bin:$PATH
for cmd in nbdkit qemu-nbd qemu-img nbdcopy nbdinfo python3; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
mkdir -p "$dir"

# write_raw OUT SIZE LAYER: a sparse raw file of SIZE bytes with the
# runs of LAYER (all: every run; flat: every run, densely).  Run i is
# 1 MiB of seeded random bytes; where it goes is seeded too, so every
# image holds the same data.
write_raw ()
{
    rm -f "$1"
    truncate -s "$2" "$1"
    python3 - "$1" "$3" "$layers" <<'EOF'
import random, sys
out, layer, layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
MiB = 1 << 20
runs = 1024
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
    if test $im = flat; then write_raw "$dir/$im.raw" 1G flat
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

# Every server running, by name (KIND-IMAGE): pid.
declare -A pid_of
tmp=$(mktemp -d)
trap 'kill "${pid_of[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

# serve KIND IMAGE NAME: a read-only server on $tmp/NAME.sock; prints
# its pid.
serve ()
{
    local sock=$tmp/$3.sock pidf=$tmp/$3.pid i
    case "$1" in
    # shellcheck disable=SC2086
    ours) nbdkit -f -r ${NBDKIT_ARGS:-} -U "$sock" --pidfile "$pidf" \
              "$plugin" file="$2" ;;
    qemu) qemu-nbd -r --shared=0 -f qcow2 --persistent -k "$sock" \
              --pid-file="$pidf" "$2" ;;
    file) nbdkit -f -r -U "$sock" --pidfile "$pidf" file "$2" ;;
    esac >"$tmp/$3.log" 2>&1 &
    for ((i = 0; i < 100; i++)); do
        test -S "$sock" && test -s "$pidf" && break
        sleep 0.1
    done
    test -s "$pidf" || { cat "$tmp/$3.log" >&2; exit 1; }
    cat "$pidf"
}

uri () { echo "nbd+unix:///?socket=$tmp/$1.sock"; }

for im in "${images[@]}"; do
    for s in ours qemu; do
        pid_of[$s-$im]=$(serve "$s" "${file[$im]}" "$s-$im")
    done
    pid_of[file-$im]=$(serve file "${raw[$im]}" "file-$im")
    nbdinfo --map "$(uri "ours-$im")" >"$tmp/ours-$im.map"
    nbdinfo --map "$(uri "qemu-$im")" >"$tmp/qemu-$im.map"
    cmp -s "$tmp/ours-$im.map" "$tmp/qemu-$im.map" || {
        echo "$0: the maps of $im differ (ours, qemu-nbd):" >&2
        diff "$tmp/ours-$im.map" "$tmp/qemu-$im.map" | head >&2
        exit 1
    }
done

# The server's CPU seconds so far (utime + stime).
cpu_of () { awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / t }' "/proc/$1/stat"; }

# time_read NAME: one full read; adds its seconds to times[NAME] and
# the server's CPU seconds to cpu[NAME].
declare -A times cpu
time_read ()
{
    local start end c0 c1 t
    c0=$(cpu_of "${pid_of[$1]}")
    start=$(date +%s.%N)
    nbdcopy "$(uri "$1")" null:
    end=$(date +%s.%N)
    c1=$(cpu_of "${pid_of[$1]}")
    t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }')
    times[$1]+="$t "
    cpu[$1]+="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }') "
    printf 'round %d  %-12s %.3f s\n' "$r" "$1" "$t" >&2
}

r=0
for im in "${images[@]}"; do                            # warm-up
    for s in ours qemu file; do time_read "$s-$im"; done
done
times=() cpu=()
for ((r = 1; r <= rounds; r++)); do
    order=(ours qemu)
    ((r % 2)) || order=(qemu ours)
    for im in "${images[@]}"; do
        for s in "${order[@]}" file; do time_read "$s-$im"; done
    done
done

# stats: the median, min and max of the numbers on stdin.
stats ()
{
    tr ' ' '\n' | grep -v '^$' | sort -g |
        awk '{ a[NR] = $1 } END {
                 m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
                 printf "%.2f %.2f %.2f\n", m, a[1], a[NR] }'
}
# ratios A B: the per-round ratios of the times in lists A / B.
ratios ()
{
    paste <(tr ' ' '\n' <<<"$1" | grep -v '^$') <(tr ' ' '\n' <<<"$2" | grep -v '^$') |
        awk '{ printf "%f ", $1 / $2 }'
}

label ()
{
    case $1 in
    sparse) echo "1 TiB sparse, 1 GiB data" ;;
    chain) echo "$layers-image chain, 1 TiB" ;;
    flat) echo "flat 1 GiB (reference)" ;;
    esac
}
echo
echo "nbdcopy URI null:, $rounds pairs (ours, qemu-nbd alternating), then nbdkit's"
echo "file plugin on the same data as a raw file (1 TiB sparse, or 1 GiB); medians"
echo "[per-round range]; speedup = qemu-nbd time / ours; vs flat = ours / ours"
echo "on the flat image in the same round"
printf '  %-26s %7s %7s %7s %19s %19s\n' row ours qemu-nbd file speedup "vs flat"
for im in "${images[@]}"; do
    read -r mo _ _ < <(stats <<<"${times[ours-$im]}")
    read -r mq _ _ < <(stats <<<"${times[qemu-$im]}")
    read -r mf _ _ < <(stats <<<"${times[file-$im]}")
    read -r sp slo shi < <(ratios "${times[qemu-$im]}" "${times[ours-$im]}" | stats)
    read -r vf vlo vhi < <(ratios "${times[ours-$im]}" "${times[ours-flat]}" | stats)
    printf '  %-26s %6.2fs %6.2fs %6.2fs %6.2fx [%.2f-%.2f] %6.2fx [%.2f-%.2f]\n' \
        "$(label "$im")" "$mo" "$mq" "$mf" "$sp" "$slo" "$shi" "$vf" "$vlo" "$vhi"
done
read -r cs clo chi < <(ratios "${times[ours-chain]}" "${times[ours-sparse]}" | stats)
printf '  the chain against the same data in one image (ours / ours on sparse): %.2fx [%.2f-%.2f]\n' \
    "$cs" "$clo" "$chi"

# The lines bench/suite.sh collects (bench/lib.sh's format): speedups
# over qemu-nbd, and ours against the flat image and the raw file.
for im in sparse chain; do
    read -r mo _ _ < <(stats <<<"${times[ours-$im]}")
    read -r mq _ _ < <(stats <<<"${times[qemu-$im]}")
    read -r mf _ _ < <(stats <<<"${times[file-$im]}")
    read -r mflat _ _ < <(stats <<<"${times[ours-flat]}")
    printf '@row|scale-%s|nbdcopy to null: of %s|%s|%s|s|%s|%s\n' "$im" \
        "$(label "$im")" "$mo" "$mq" \
        "$(ratios "${times[qemu-$im]}" "${times[ours-$im]}" | stats | tr ' ' '|')" \
        "$rounds"
    printf '@ceiling|scale-%s|flat 1 GiB image, same data, ours|%s|s|%s\n' "$im" \
        "$mflat" "$(ratios "${times[ours-flat]}" "${times[ours-$im]}" | stats | tr ' ' '|')"
    printf '@ceiling|scale-%s|raw data via nbdkit file|%s|s|%s\n' "$im" \
        "$mf" "$(ratios "${times[file-$im]}" "${times[ours-$im]}" | stats | tr ' ' '|')"
done

echo
echo "the servers' CPU seconds per copy (utime + stime; load does not inflate them)"
printf '  %-26s %7s %7s %7s %19s\n' row ours qemu-nbd file "ours vs flat"
for im in "${images[@]}"; do
    read -r co _ _ < <(stats <<<"${cpu[ours-$im]}")
    read -r cq _ _ < <(stats <<<"${cpu[qemu-$im]}")
    read -r cf _ _ < <(stats <<<"${cpu[file-$im]}")
    read -r vf vlo vhi < <(ratios "${cpu[ours-$im]}" "${cpu[ours-flat]}" | stats)
    printf '  %-26s %6.2fs %6.2fs %6.2fs %6.2fx [%.2f-%.2f]\n' \
        "$(label "$im")" "$co" "$cq" "$cf" "$vf" "$vlo" "$vhi"
done

# Memory: a fresh server of each kind on the chain, N connections
# reading, then its VmHWM and VmRSS.
kill "${pid_of[@]}"
pid_of=()
status_kib () { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }
echo
echo "RSS on the chain: 256 KiB reads of the data, 16 in flight per connection"
printf '  %-12s %12s %12s %12s %12s\n' connections "ours HWM" "ours RSS" "qemu HWM" "qemu RSS"
for n in 1 16 64; do
    line=
    for s in ours qemu; do
        pid=$(serve "$s" "${file[chain]}" "rss-$s-$n")
        pid_of[rss]=$pid
        python3 "$top/tests/parallel-reads.py" "$(uri "rss-$s-$n")" "$n" 64 >/dev/null
        line+=$(printf ' %9d KiB %9d KiB' "$(status_kib VmHWM "$pid")" "$(status_kib VmRSS "$pid")")
        kill "$pid"
        unset 'pid_of[rss]'
    done
    printf '  %-12s%s\n' "$n" "$line"
done
