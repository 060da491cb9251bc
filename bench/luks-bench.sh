#!/bin/bash
# Read and write throughput of a LUKS1 volume (aes-xts-plain64, 1 GiB by
# default) served three ways, side by side in one run:
#   ours      nbdkit file + this tree's luks filter (--filter=./luks.so)
#   qemu-nbd  qemu-nbd --image-opts driver=luks (--shared=0, multi-conn)
#   system    nbdkit file + the system's nbdkit-luks-filter
# Each figure is the median of RUNS runs of nbdcopy: export -> null: for
# reads, a 1 GiB file -> export (with --flush) for writes.
#
#   bench/luks-bench.sh [SIZE_MIB] [RUNS]      (from the top of the build tree)
set -euo pipefail

size_mib=${1:-1024}
runs=${2:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
ours=${LUKS_FILTER:-$top/luks.so}
test -e "$ours" || { echo "build first: $ours is missing" >&2; exit 1; }
export PATH=/usr/sbin:/usr/bin:$PATH

dir=$(mktemp -d /var/tmp/luks-bench.XXXXXX)
pids=()
cleanup ()
{
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    done
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"

echo -n bench-pass > key
echo "making a ${size_mib} MiB LUKS1 volume (qemu-img, aes-xts-plain64) ..." >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom > src.raw
for i in 1 2 3 4 5; do
    rm -f vol.luks
    qemu-img convert -O luks --object secret,id=sec0,file=key \
        -o key-secret=sec0,iter-time=500 src.raw vol.luks && break
done

# wait_for SOCKET PID
wait_for ()
{
    local i
    for ((i = 0; i < 300; i++)); do
        test -S "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "server died" >&2; exit 1; }
        sleep 0.1
    done
    echo "server did not start" >&2
    exit 1
}

nbdkit -f -U "$dir/ours.sock" --filter="$ours" file vol.luks \
    passphrase=+key 2>ours.log &
pids+=($!); wait_for "$dir/ours.sock" $!
qemu-nbd --shared=0 --persistent -k "$dir/qemu.sock" --object secret,id=sec0,file=key \
    --image-opts driver=luks,key-secret=sec0,file.filename=vol.luks \
    2>qemu.log &
pids+=($!); wait_for "$dir/qemu.sock" $!
nbdkit -f -U "$dir/system.sock" --filter=luks file vol.luks \
    passphrase=+key 2>system.log &
pids+=($!); wait_for "$dir/system.sock" $!

names=(ours qemu-nbd system)
uris=("nbd+unix:///?socket=$dir/ours.sock"
      "nbd+unix:///?socket=$dir/qemu.sock"
      "nbd+unix:///?socket=$dir/system.sock")

# Every server unlocks on its first connection: do that before timing.
for u in "${uris[@]}"; do nbdinfo --size "$u" >/dev/null; done

seconds ()
{
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

median ()
{
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

declare -A rd wr
for ((r = 1; r <= runs; r++)); do
    for i in 0 1 2; do
        rd[$i]+=" $(seconds nbdcopy "${uris[$i]}" null:)"
        wr[$i]+=" $(seconds nbdcopy --flush src.raw "${uris[$i]}")"
    done
done

printf '\nLUKS1 aes-xts-plain64, %d MiB, median of %d runs (nbdcopy, %s)\n' \
    "$size_mib" "$runs" "$(nproc) CPUs"
printf '%-10s %12s %12s\n' server "read MiB/s" "write MiB/s"
for i in 0 1 2; do
    # shellcheck disable=SC2086
    tr=$(median ${rd[$i]})
    # shellcheck disable=SC2086
    tw=$(median ${wr[$i]})
    printf '%-10s %12.0f %12.0f\n' "${names[$i]}" \
        "$(echo "$size_mib / $tr" | bc -l)" "$(echo "$size_mib / $tw" | bc -l)"
done
