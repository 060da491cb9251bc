#!/bin/bash
# The qcow2 filter's rows (issue 12), each side by side in one run:
#
#   filter-read      nbdcopy of a SIZE image to null:, the filter over
#                    nbdkit's file plugin against our plugin on the same
#                    file (goal: the filter at most 10 % slower)
#   filter-latency   the same over a layer LATENCY away: nbdkit's file
#                    plugin under its delay filter (rdelay=LATENCY), read
#                    by the filter through the nbd plugin, and by qemu-nbd
#                    through QEMU's nbd block driver (goal: 2 x); with the
#                    ceiling: nbdcopy of the image file straight from
#                    that layer (which runs 64 threads a connection, so
#                    that it is not what limits requests in flight)
#   filter-http      an image served by lighttpd on 127.0.0.1 copied
#                    into a file on /dev/shm: by nbdcopy from the filter
#                    over the curl plugin, and by `qemu-img convert`
#                    through QEMU's http driver (qemu-block-extra; goal:
#                    1.5 x); with the ceiling: nbdcopy of the image file
#                    from the curl plugin alone.  qemu-nbd is not the
#                    reference here: over QEMU 7.2's http driver it
#                    hangs once a client has 4 or more requests in flight
#                    (see README.md)
#   filter-randwrite fio 4K random writes, QD32 x 2, RUNTIME s, into a
#                    preallocated (falloc) image: the filter over the
#                    file plugin against qemu-nbd (goal: 1.5 x)
#
#   bench/filter-bench.sh [ROUNDS]
#
# Environment: ROUNDS (default 3), ROWS (a subset of the rows above),
# SIZE (default 1G; the latency and HTTP rows read LATENCY_SIZE,
# default 256M), LATENCY (default 1ms, as the delay filter takes it),
# THREADS (nbdkit -t of the filter's server in filter-latency; default
# nbdkit's 16: the requests in flight below, see README.md),
# HTTP_TIMEOUT (default 60: seconds before a hung qemu-img is killed),
# PREALLOC_SIZE (default 4G), RUNTIME (default 10),
# BUILDDIR, WORKDIR (see lib.sh).  Prints the rows as @row lines.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
bench_need nbdkit qemu-nbd qemu-img nbdcopy nbdsh
rounds=${1:-${ROUNDS:-3}}
size=${SIZE:-1G}
lsize=${LATENCY_SIZE:-256M}
latency=${LATENCY:-1ms}
psize=${PREALLOC_SIZE:-4G}
filter=$builddir/qcow2-filter.so
test -e "$filter" || { echo "$0: $filter not built (run make)" >&2; exit 1; }

# image_of SIZE: a qcow2 image (64 KiB clusters) of SIZE of real data.
image_of ()
{
    local raw=$workdir/data-$1.raw img=$workdir/data-$1-filter.qcow2
    make_data_raw "$raw" "$1"
    if ! test -f "$img"; then
        qemu-img convert -f raw -O qcow2 "$raw" "$img.tmp"
        mv "$img.tmp" "$img"
    fi
    cat "$img" >/dev/null       # warm the page cache
    echo "$img"
}

# copy_once S: nbdcopy of server S to null:, in MiB/s of its size
# (bytes, or bytes_of[S] for a server of the image file itself).
declare -A bytes_of=()
copy_once ()
{
    result=$(mibs "${bytes_of[$1]:-$bytes}" "$(seconds nbdcopy "${nbd_uri[$1]}" null:)")
}

# read_row KEY WORKLOAD A B [CEILING WHAT]: alternate nbdcopy over the
# servers A and B (already serving) and CEILING if given, print the row
# (A against B) and the ceiling line, stop A and B.
read_row ()
{
    local row_ours=$3 row_qemu=$4 s servers=("$3" "$4")
    same_data "$3" "$4"
    test -z "${5:-}" || servers+=("$5")
    for s in "${servers[@]}"; do copy_once "$s"; done     # warm-up
    alternate "$rounds" copy_once "${servers[@]}"
    emit_row "$1" "$2" MiB/s
    test -z "${5:-}" || emit_ceiling "$1" "$6" "$5" MiB/s
    unserve "$3"
    unserve "$4"
    reset_results
}

if want_row filter-read; then
    img=$(image_of "$size")
    bytes=$(qemu-img info --output=json "$img" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])')
    RO=1 serve filter nbdkit --filter="$filter" file "$img"
    RO=1 serve plugin ours "$img"
    echo "filter-read: the filter over the file plugin / our plugin, MiB/s" >&2
    read_row filter-read "nbdcopy $size to null:, filter / plugin" filter plugin
fi

if want_row filter-latency; then
    img=$(image_of "$lsize")
    bytes=$(stat -c %s "$workdir/data-$lsize.raw")
    RO=1 serve below nbdkit -t 64 --filter=delay file "$img" rdelay="$latency"
    below=$tmp/below.sock
    bytes_of[below]=$(stat -c %s "$img")
    RO=1 serve ours nbdkit ${THREADS:+-t "$THREADS"} --filter="$filter" nbd socket="$below"
    RO=1 serve qemu qemu --image-opts \
        "driver=qcow2,file.driver=nbd,file.server.type=unix,file.server.path=$below"
    echo "filter-latency: reads $latency away, MiB/s" >&2
    read_row filter-latency "nbdcopy $lsize to null:, layer $latency away${THREADS:+, ours -t $THREADS}" ours qemu \
        below "the image file from that layer"
    unserve below
fi

if want_row filter-http; then
    bench_need lighttpd
    img=$(image_of "$lsize")
    bytes=$(stat -c %s "$workdir/data-$lsize.raw")
    port=$(/usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$tmp/http.conf" <<EOF
server.document-root = "$(dirname "$img")"
server.bind = "127.0.0.1"
server.port = $port
mimetype.assign = ("" => "application/octet-stream")
EOF
    lighttpd -D -f "$tmp/http.conf" </dev/null >"$tmp/http.log" 2>&1 &
    spid[http]=$!
    url=http://127.0.0.1:$port/$(basename "$img")
    for ((i = 0; i < 100; i++)); do
        nbdkit -U - curl url="$url" --run 'nbdinfo --size "$uri"' >/dev/null 2>&1 && break
        sleep 0.1
    done
    # Each copy goes to a fresh file on /dev/shm, so that no disk
    # write is timed and both copies write the same way.  QEMU 7.2's
    # http driver hangs now and then under qemu-img too (seen once in
    # CI, on a 16 MiB image): a copy that takes HTTP_TIMEOUT seconds is
    # killed, and the row is then not measured at all (emit_skip).
    out=/dev/shm/filter-bench-$$.raw
    http_timeout=${HTTP_TIMEOUT:-60}
    http_hung=
    http_once ()
    {
        local cmd t over=()
        result=0
        test -z "$http_hung" || return 0
        rm -f "$out"
        case $1 in
        ours|curl)
            # ours: the guest data through the filter; curl: the image
            # file's own bytes from the plugin alone.
            test "$1" = curl || over=(--filter="$filter")
            truncate -s "${bytes_of[$1]:-$bytes}" "$out"
            cmd=(nbdkit -r -U - "${over[@]}" curl url="$url"
                 --run "nbdcopy \"\$uri\" $out") ;;
        qemu) cmd=(timeout -s KILL "$http_timeout" qemu-img convert -f qcow2 -O raw
                   "json:{\"file.driver\": \"http\", \"file.url\": \"$url\"}" "$out") ;;
        esac
        if ! t=$(seconds "${cmd[@]}"); then
            rm -f "$out"
            test "$1" = qemu || exit 1
            echo "$0: filter-http: qemu-img convert through QEMU's http driver" \
                 "failed or hung (killed after $http_timeout s): not measured" >&2
            http_hung=1
            return 0
        fi
        result=$(mibs "${bytes_of[$1]:-$bytes}" "$t")
        if test "$1" != curl && ! cmp -s "$out" "$workdir/data-$lsize.raw"; then
            rm -f "$out"
            echo "$0: $1 copied other data over HTTP" >&2
            exit 1
        fi
        rm -f "$out"
    }
    bytes_of[curl]=$(stat -c %s "$img")
    echo "filter-http: copies from lighttpd on 127.0.0.1 to /dev/shm, MiB/s" >&2
    for s in ours qemu curl; do http_once "$s"; done     # warm-up
    test -n "$http_hung" || alternate "$rounds" http_once ours qemu curl
    if test -z "$http_hung"; then
        emit_row filter-http "$lsize from HTTP to a file, filter / qemu-img convert" MiB/s
        emit_ceiling filter-http "the image file by the curl plugin" curl MiB/s
    else
        emit_skip filter-http "qemu-img convert over QEMU's http driver hung"
    fi
    reset_results
    kill "${spid[http]}"
    unset "spid[http]"
fi

if want_row filter-randwrite; then
    bench_need fio
    fio_has_nbd || { echo "$0: this fio has no nbd engine" >&2; exit 1; }
    img=$workdir/filter-randwrite.qcow2
    write_once ()
    {
        rm -f "$img"
        qemu-img create -q -f qcow2 -o preallocation=falloc "$img" "$psize"
        case $1 in
        ours) serve ours nbdkit --filter="$filter" file "$img" ;;
        qemu) serve qemu qemu -f qcow2 "$img" ;;
        esac
        result=$(fio_iops "${nbd_uri[$1]}" randwrite)
        unserve "$1"
        qemu-img check -q "$img"
    }
    echo "filter-randwrite: fio 4K randwrite QD32 x 2 into a falloc image, IOPS" >&2
    alternate "$rounds" write_once ours qemu
    emit_row filter-randwrite "fio 4K randwrite QD32 x 2, falloc $psize, over the file plugin" IOPS
    rm -f "$img"
    reset_results
fi
