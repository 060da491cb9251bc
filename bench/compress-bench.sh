#!/bin/bash
# Compressed qcow2 output, as virt-v2v -oo compressed makes it: the same
# nbdcopy workload (`nbdcopy --requests=64 --flush RAW URI`) into a new
# image through
#   ours   nbdkit --filter=./compress.so ./qcow2.so file=IMAGE
#   qemu   qemu-nbd --shared=0 -t --image-opts driver=compress,
#            file.driver=qcow2,file.file.driver=file,file.file.filename=IMAGE
# for zlib- and zstd-type images, the servers alternating (A B, B A),
# several rounds; prints the median of the per-pair speed ratios with
# their range, the median throughput of each, the server's CPU time
# (user + system, all threads; steadier than wall time when the machine
# is shared), the output sizes, and the ratios.  Both outputs of the last round are checked with qemu-img
# check and compared with the source.
#
#   bench/compress-bench.sh [ROUNDS]          (default 3)
#
# Environment: BUILDDIR (default: the top of the source tree) holds
# qcow2.so and compress.so; WORKDIR (default bench/out) holds the source
# image, kept between runs; SIZE (default 1G); CLUSTER (default 64k);
# TYPES (default "zlib zstd").

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-3}
size=${SIZE:-1G}
cluster=${CLUSTER:-65536}
types=${TYPES:-zlib zstd}
plugin=$builddir/qcow2.so
filter=$builddir/compress.so

raw=$workdir/disk-$size.raw

for cmd in nbdkit qemu-nbd qemu-img nbdcopy /usr/bin/python3; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
for m in "$plugin" "$filter"; do
    test -e "$m" || { echo "$0: $m not built (run make)" >&2; exit 1; }
done
mkdir -p "$workdir"

# A used-looking disk: files from /usr laid out as a file system would,
# random (incompressible) data and zero runs (tests/make-disk-image.py).
if ! test -f "$raw"; then
    echo "making $raw" >&2
    /usr/bin/python3 "$top/tests/make-disk-image.py" --seed 1 "$size" "$raw.tmp"
    mv "$raw.tmp" "$raw"
fi
cat "$raw" >/dev/null           # warm the page cache
bytes=$(stat -c %s "$raw")

tmp=$(mktemp -d)
cleanup ()
{
    local pid
    # Servers still running if the script was interrupted.
    for pid in $(cat "$tmp/pids" 2>/dev/null); do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_pidfile ()
{
    local i
    for ((i = 0; i < 200; i++)); do
        test -s "$1" && return 0
        sleep 0.05
    done
    echo "$0: server did not start" >&2
    exit 1
}

# stop PID: stop a server and wait until it has gone (it closes the
# image on the way out).
stop ()
{
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
}

# cpu_ticks PID: user + system time of a process so far, in clock ticks.
cpu_ticks ()
{
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# run SERVER TYPE IMAGE: one timed copy; prints "SECONDS CPU-SECONDS".
run ()
{
    local server=$1 type=$2 img=$3 sock=$tmp/sock pidfile=$tmp/pid t0 t1 pid c0 c1
    rm -f "$img" "$sock" "$pidfile"
    qemu-img create -q -f qcow2 -o cluster_size="$cluster",compression_type="$type" \
        "$img" "$bytes"
    case $server in
    ours)
        nbdkit -U "$sock" --pidfile "$pidfile" \
            --filter="$filter" "$plugin" file="$img" </dev/null
        ;;
    qemu)
        qemu-nbd --fork --pid-file="$pidfile" -k "$sock" --shared=0 -t \
            --image-opts "driver=compress,file.driver=qcow2,file.file.driver=file,file.file.filename=$img" \
            </dev/null
        ;;
    esac
    wait_pidfile "$pidfile"
    pid=$(cat "$pidfile")
    echo "$pid" >>"$tmp/pids"
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    nbdcopy --requests=64 --flush "$raw" "nbd+unix:///?socket=$sock"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    stop "$pid"
    printf '%.3f %.2f\n' "$(echo "$t1 - $t0" | bc -l)" \
        "$(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l)"
}

median ()
{
    sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

mbs ()
{
    echo "$bytes / $1 / 1000000" | bc -l | xargs printf '%.0f'
}

echo "source: $raw, $bytes bytes; clusters $cluster; $rounds rounds; $(nproc) cores"
echo "ours: zlib encoder $(nbdkit "$plugin" --dump-plugin | sed -n 's/^qcow2_zlib_encoder=//p')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-5s %10s %9s %12s\n' type server "MB/s" "CPU s" "bytes"
for type in $types; do
    declare -A times=() cpus=() pair=()
    ratios=""
    for ((r = 0; r < rounds; r++)); do
        # Alternate which server goes first (A B, B A, ...).
        if ((r % 2)); then order="ours qemu"; else order="qemu ours"; fi
        for server in $order; do
            read -r t c < <(run $server "$type" "$workdir/out-$server-$type.qcow2")
            times[$server]+="$t "
            cpus[$server]+="$c "
            pair[$server]=$t
        done
        ratios+="$(echo "${pair[qemu]} / ${pair[ours]}" | bc -l | xargs printf '%.2f') "
    done
    for server in qemu ours; do
        img=$workdir/out-$server-$type.qcow2
        qemu-img check -q "$img" || { echo "$0: $server $type: check failed" >&2; exit 1; }
        qemu-img compare -q -f raw -F qcow2 "$raw" "$img" ||
            { echo "$0: $server $type: differs from the source" >&2; exit 1; }
    done
    tq=$(echo "${times[qemu]}" | tr ' ' '\n' | grep . | median)
    to=$(echo "${times[ours]}" | tr ' ' '\n' | grep . | median)
    cq=$(echo "${cpus[qemu]}" | tr ' ' '\n' | grep . | median)
    co=$(echo "${cpus[ours]}" | tr ' ' '\n' | grep . | median)
    sq=$(stat -c %s "$workdir/out-qemu-$type.qcow2")
    so=$(stat -c %s "$workdir/out-ours-$type.qcow2")
    printf '%-5s %-5s %10s %9s %12s\n' "$type" qemu "$(mbs "$tq")" "$cq" "$sq"
    printf '%-5s %-5s %10s %9s %12s\n' "$type" ours "$(mbs "$to")" "$co" "$so"
    printf '%-5s speed ours/qemu %.2fx, CPU qemu/ours %.2fx, size ours/qemu %.3f\n' \
        "$type" "$(echo "$tq / $to" | bc -l)" "$(echo "$cq / $co" | bc -l)" \
        "$(echo "$so / $sq" | bc -l)"
    printf '%-5s per-pair speed ratios: median %sx, range %s-%s (%s)\n' "$type" \
        "$(echo "$ratios" | tr ' ' '\n' | grep . | median)" \
        "$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | head -1)" \
        "$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | tail -1)" "${ratios% }"
    echo "      times: qemu ${times[qemu]% }; ours ${times[ours]% }"
    unset times cpus pair
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
