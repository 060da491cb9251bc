#!/bin/bash
# Read and write throughput of a LUKS-encrypted qcow2 image (qcow2
# crypt_method 2, aes-xts-plain64) through
#   ours   nbdkit ./qcow2.so file=IMAGE passphrase=+FILE
#   qemu   qemu-nbd --shared=0 --image-opts driver=qcow2,encrypt.key-secret=...
# Read: `nbdcopy URI null:` of a full image (page cache warm).
# Write: `nbdcopy --flush RAW URI` into a fresh, empty encrypted image
# (allocation, encryption and metadata updates included).
# The servers alternate for ROUNDS rounds; medians are printed.
#
#   bench/qcow2-encrypt-bench.sh [ROUNDS]      (default 5)
#
# Environment: BUILDDIR (default: the top of the source tree) holds
# qcow2.so; WORKDIR (default bench/out) holds the files; SIZE (default 1G).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
builddir=${BUILDDIR:-$top}
workdir=${WORKDIR:-$here/out}
rounds=${1:-5}
size=${SIZE:-1G}
plugin=$builddir/qcow2.so
pass=bench-passphrase
secret="secret,id=sec0,data=$pass"

raw=$workdir/random-$size.raw
img=$workdir/luks-$size.qcow2

for cmd in nbdkit qemu-nbd qemu-img nbdcopy; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is needed" >&2; exit 1; }
done
test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
mkdir -p "$workdir"

tmp=$(mktemp -d)
pids=()
cleanup ()
{
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
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

test -f "$raw" || head -c "$(numfmt --from=iec "$size")" /dev/urandom > "$raw"
if ! test -f "$img"; then
    echo "making $img" >&2
    new_image "$img"
    qemu-img convert -n --object "$secret" -f raw "$raw" \
        --target-image-opts \
        "driver=qcow2,file.filename=$img,encrypt.key-secret=sec0"
fi
cat "$raw" "$img" >/dev/null   # warm the page cache

wait_socket ()
{
    local i
    for ((i = 0; i < 100; i++)); do
        test -S "$1" && return 0
        sleep 0.1
    done
    echo "$0: server did not start" >&2
    exit 1
}

# serve KIND IMAGE RO: start a server, set uri and server_pid.
serve ()
{
    local kind=$1 image=$2 ro=$3 sock=$tmp/$1.sock
    rm -f "$sock"
    case "$kind" in
    ours)
        nbdkit -f -U "$sock" ${ro:+-r} "$plugin" file="$image" \
            passphrase=+"$tmp/pass" &
        ;;
    qemu)
        qemu-nbd --shared=0 ${ro:+-r} -k "$sock" --object "$secret" \
            --image-opts "driver=qcow2,file.filename=$image,encrypt.key-secret=sec0" &
        ;;
    esac
    server_pid=$!
    pids+=("$server_pid")
    wait_socket "$sock"
    uri="nbd+unix:///?socket=$sock"
}

# (qemu-nbd exits by itself when its last client leaves.)
stop ()
{
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# seconds CMD...: wall time of CMD.
seconds ()
{
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}

median ()
{
    sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

bytes=$(stat -c %s "$raw")
declare -A reads writes
for ((r = 1; r <= rounds; r++)); do
    for kind in ours qemu; do
        serve "$kind" "$img" 1
        reads[$kind]+="$(seconds nbdcopy "$uri" null:) "
        stop
        new_image "$tmp/w.qcow2"
        serve "$kind" "$tmp/w.qcow2" ""
        writes[$kind]+="$(seconds nbdcopy --flush "$raw" "$uri") "
        stop
    done
    echo "round $r done" >&2
done

printf '%-6s %12s %12s\n' server "read MB/s" "write MB/s"
for kind in ours qemu; do
    rd=$(tr ' ' '\n' <<< "${reads[$kind]}" | grep . | median)
    wr=$(tr ' ' '\n' <<< "${writes[$kind]}" | grep . | median)
    printf '%-6s %12.0f %12.0f\n' "$kind" \
        "$(echo "$bytes / $rd / 1000000" | bc -l)" \
        "$(echo "$bytes / $wr / 1000000" | bc -l)"
done
