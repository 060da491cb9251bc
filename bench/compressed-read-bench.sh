#!/bin/bash
# Reads of compressed qcow2 images made by `qemu-img convert -c`, ours
# against qemu-nbd side by side (alternating, ROUNDS pairs; the figure
# is the median of the per-pair ratios, with their range):
#   copy     `nbdcopy URI null:` of a SIZE image, zlib and zstd
#   randread fio's nbd engine, 4 KiB random reads, iodepth 32, 2 jobs
#            (2 connections), RUNTIME seconds, of a RSIZE zlib image
# servers:
#   ours   nbdkit -r ./qcow2.so file=IMAGE
#   qemu   qemu-nbd -r --shared=0 --persistent -e 2 -f qcow2 IMAGE
# Also the server's CPU time (user + system, all threads) per run,
# steadier than wall time when the machine is shared.
#
#   bench/compressed-read-bench.sh [ROUNDS]          (default 3)
#
# Environment: BUILDDIR (default: the top of the source tree) holds
# qcow2.so; WORKDIR (default bench/out) holds the images, kept between
# runs; SIZE (default 1G), RSIZE (default 4G), CLUSTER (default 64k),
# RUNTIME (default 10), ROWS (default "copy-zlib copy-zstd randread").

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-3}
size=${SIZE:-1G}
rsize=${RSIZE:-4G}
cluster=${CLUSTER:-65536}
runtime=${RUNTIME:-10}
rows=${ROWS:-copy-zlib copy-zstd randread}
plugin=$builddir/qcow2.so

for cmd in nbdkit qemu-nbd qemu-img nbdcopy fio /usr/bin/python3; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd ||
    { echo "$0: this fio has no nbd engine" >&2; exit 1; }
test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
mkdir -p "$workdir"

# image SIZE TYPE: a used-looking disk (tests/make-disk-image.py)
# compressed by qemu-img; prints its name.  The raw file is not kept.
image ()
{
    local sz=$1 type=$2 raw img
    img=$workdir/compressed-$sz-$cluster-$type.qcow2
    raw=$workdir/compressed-$sz.raw
    if ! test -f "$img"; then
        if ! test -f "$raw"; then
            echo "making $raw" >&2
            /usr/bin/python3 "$top/tests/make-disk-image.py" --seed 1 "$sz" "$raw.tmp"
            mv "$raw.tmp" "$raw"
        fi
        echo "making $img" >&2
        qemu-img convert -m 2 -W -c -f raw -O qcow2 \
            -o compression_type="$type",cluster_size="$cluster" "$raw" "$img.tmp"
        mv "$img.tmp" "$img"
    fi
    echo "$img"
}

tmp=$(mktemp -d)
server_pid=
cleanup ()
{
    test -z "$server_pid" || kill "$server_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# start ours|qemu IMG: sets uri and server_pid.
start ()
{
    local i sock=$tmp/$1.sock pidf=$tmp/$1.pid
    rm -f "$sock" "$pidf"
    case "$1" in
    ours) nbdkit -f -r -U "$sock" --pidfile "$pidf" \
              "$plugin" file="$2" >"$tmp/$1.log" 2>&1 & ;;
    qemu) qemu-nbd -r --shared=0 --persistent -e 2 -f qcow2 -k "$sock" \
              --pid-file="$pidf" "$2" >"$tmp/$1.log" 2>&1 & ;;
    esac
    server_pid=$!
    # Both the socket and the pid file: under load either may lag.
    for ((i = 0; i < 600; i++)); do
        test -S "$sock" && test -s "$pidf" && break
        sleep 0.05
    done
    test -S "$sock" || { cat "$tmp/$1.log" >&2; exit 1; }
    uri="nbd+unix:///?socket=$sock"
}

stop ()
{
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

# CPU seconds (user + system, all threads) of the server so far.
cpu ()
{
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' \
        "/proc/$server_pid/stat"
}

# run ROW SERVER IMG: one measurement; prints "VALUE CPU" (VALUE is
# MiB/s for copies, IOPS for randread: larger is better).
run ()
{
    local row=$1 s=$2 img=$3 start_t end_t c0
    start "$s" "$img"
    c0=$(cpu)
    case "$row" in
    copy-*)
        start_t=$(date +%s.%N)
        nbdcopy "$uri" null:
        end_t=$(date +%s.%N)
        awk -v a="$start_t" -v b="$end_t" -v n="$(qemu-img info --output=json "$img" |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
            -v c0="$c0" -v c1="$(cpu)" \
            'BEGIN { printf "%.1f %.2f\n", n / 1048576 / (b - a), c1 - c0 }'
        ;;
    randread)
        fio --name=randread --ioengine=nbd --uri="$uri" --rw=randread \
            --bs=4k --iodepth=32 --numjobs=2 --group_reporting \
            --time_based --runtime="$runtime" --randrepeat=0 \
            --output-format=json --output="$tmp/fio.json" >/dev/null
        /usr/bin/python3 -c '
import json, sys
print("%.0f %s" % (json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"], sys.argv[2]))' \
            "$tmp/fio.json" "$(awk -v a="$c0" -v b="$(cpu)" 'BEGIN { printf "%.2f", b - a }')"
        ;;
    esac
    stop
}

median () { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A label=(
    [copy-zlib]="nbdcopy $size to null:, zlib (MiB/s)"
    [copy-zstd]="nbdcopy $size to null:, zstd (MiB/s)"
    [randread]="fio 4K randread QD32x2, $rsize zlib (IOPS)"
)
results=()
for row in $rows; do
    case "$row" in
    copy-zlib) img=$(image "$size" zlib) ;;
    copy-zstd) img=$(image "$size" zstd) ;;
    randread)  img=$(image "$rsize" zlib) ;;
    *) echo "$0: unknown row $row" >&2; exit 1 ;;
    esac
    cat "$img" >/dev/null        # warm the page cache
    # Check once that both serve the same bytes (copies only: cheap).
    case "$row" in copy-*)
        sums=$(for s in ours qemu; do
                   start "$s" "$img"; nbdcopy "$uri" - | md5sum; stop
               done | sort -u | wc -l)
        test "$sums" -eq 1 || { echo "$0: the servers disagree on $img" >&2; exit 1; }
    esac
    ratios=() ours=() qemu=() cpus_o=() cpus_q=()
    for ((r = 1; r <= rounds; r++)); do
        # Alternate which server goes first.
        if ((r % 2)); then order=(ours qemu); else order=(qemu ours); fi
        for s in "${order[@]}"; do
            read -r v c < <(run "$row" "$s" "$img")
            printf '%-10s round %d  %-5s %10s  cpu %6s s\n' "$row" "$r" "$s" "$v" "$c" >&2
            if test "$s" = ours; then vo=$v; cpus_o+=("$c"); else vq=$v; cpus_q+=("$c"); fi
        done
        ours+=("$vo") qemu+=("$vq")
        ratios+=("$(awk -v a="$vo" -v b="$vq" 'BEGIN { printf "%.2f", a / b }')")
    done
    m () { printf '%s\n' "$@" | median; }
    lo=$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)
    hi=$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)
    results+=("$(printf '  %-44s %10s %10s %6sx  %s-%s  cpu %s / %s s' "${label[$row]}" \
        "$(m "${ours[@]}")" "$(m "${qemu[@]}")" "$(m "${ratios[@]}")" "$lo" "$hi" \
        "$(m "${cpus_o[@]}")" "$(m "${cpus_q[@]}")")")
done

echo
echo "Compressed reads, $rounds pairs, medians ($cluster-byte clusters; ratio = ours / qemu-nbd, median of pairs, range):"
printf '  %-44s %10s %10s %7s  %-9s  %s\n' row ours qemu-nbd ratio range "cpu ours / qemu"
printf '%s\n' "${results[@]}"
