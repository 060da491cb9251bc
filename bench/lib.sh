# Shared by the benchmarks (sourced, bash): paths, data files, servers,
# A B alternation, medians and pair ranges, and the row lines that
# bench/suite.sh collects.  One copy of each helper: scripts source this
# rather than carry their own.
#
#   bench_init              here, top, builddir, workdir, plugin, tmp;
#                           a trap that stops every server started
#   bench_need CMD...       exit naming every missing command
#   make_data_raw FILE SIZE files under /usr repeated, a zero MiB every 16 MiB
#   make_random_raw FILE SIZE
#   make_disk_raw FILE SIZE a used-looking disk (tests/make-disk-image.py)
#   cpu_seconds PID         a server's CPU time so far (utime + stime)
#   serve NAME KIND ARGS... start one server; nbd_uri[NAME], spid[NAME]
#   unserve NAME            stop it; it must exit cleanly
#   same_data NAME...       exit unless the servers serve the same bytes
#   alternate ROUNDS FN S... FN S sets result; rounds rotate the order;
#                           results[S] = the values, one per round,
#                           results[cpu:S] = server S's CPU seconds
#   pair_stats A B          "median min max" of results[A]/results[B] per round
#   med_of S                the median of results[S]
#   emit_row / emit_ceiling / emit_skip
#                           the lines bench/suite.sh reads (see there);
#                           a UNIT of "s" (times) means lower is better
#
# Environment every script honours: BUILDDIR (default: the top of the
# tree, holding qcow2.so, luks2.so, compress.so), WORKDIR (default
# bench/out: data files kept between runs), ROUNDS, SIZE.

bench_init ()
{
    # nbdsh needs the system python3 (python3-libnbd), whatever PATH says.
    export PATH=/usr/bin:$PATH
    here=$(cd "$(dirname "$0")" && pwd)
    top=$(dirname "$here")
    builddir=${BUILDDIR:-$top}
    workdir=${WORKDIR:-$here/out}
    plugin=$builddir/qcow2.so
    test -e "$plugin" || { echo "$0: $plugin not built (run make)" >&2; exit 1; }
    mkdir -p "$workdir"
    tmp=$(mktemp -d)
    declare -gA nbd_uri=() spid=() results=()
    trap bench_cleanup EXIT
}

bench_cleanup ()
{
    local n
    for n in "${!spid[@]}"; do kill "${spid[$n]}" 2>/dev/null || true; done
    for n in "${!spid[@]}"; do wait "${spid[$n]}" 2>/dev/null || true; done
    rm -rf "$tmp"
}

bench_need ()
{
    local c missing=()
    for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
    if ((${#missing[@]})); then
        echo "$0: missing: ${missing[*]} (install them; this script installs nothing)" >&2
        exit 1
    fi
}

# fio with its nbd engine?
fio_has_nbd () { command -v fio >/dev/null && fio --enghelp 2>/dev/null | grep -qw nbd; }

bytes_of () { numfmt --from=iec "$1"; }

# make_data_raw FILE SIZE: realistic data (binaries, text, already
# compressed files from /usr) repeated to fill SIZE, a zero MiB every
# 16 MiB (as real disks have unused space); zero blocks are holes, so
# the file plugin skips at least what a qcow2 image leaves unallocated.
make_data_raw ()
{
    local raw=$1 bytes t=$1.tmp pass=0 mib
    test -f "$raw" && return 0
    bytes=$(bytes_of "$2")
    echo "making $raw ($2 of data from /usr)" >&2
    rm -f "$t"
    while test "$(stat -c %s "$t" 2>/dev/null || echo 0)" -lt "$bytes"; do
        ((++pass <= 20)) || { echo "$0: not enough data under /usr" >&2; exit 1; }
        find /usr/lib /usr/share /usr/bin -type f -size +4k -print0 2>/dev/null |
            xargs -0 cat 2>/dev/null | head -c "$bytes" >>"$t" || true
    done
    truncate -s "$bytes" "$t"
    for ((mib = 8; mib < bytes / 1048576; mib += 16)); do
        fallocate --punch-hole --offset $((mib * 1048576)) --length 1048576 "$t"
    done
    fallocate --dig-holes "$t"
    mv "$t" "$raw"
}

# make_random_raw FILE SIZE: incompressible, every byte allocated.
make_random_raw ()
{
    test -f "$1" && return 0
    echo "making $1 ($2 of random data)" >&2
    head -c "$(bytes_of "$2")" /dev/urandom >"$1.tmp"
    mv "$1.tmp" "$1"
}

# make_disk_raw FILE SIZE: a used-looking disk: files from /usr laid out
# as a file system would, random data and zero runs, seeded.
make_disk_raw ()
{
    test -f "$1" && return 0
    echo "making $1 ($2 used-looking disk)" >&2
    /usr/bin/python3 "$top/tests/make-disk-image.py" --seed 1 "$2" "$1.tmp"
    mv "$1.tmp" "$1"
}

# cpu_seconds PID: user + system CPU seconds of a process (all its
# threads) so far; load inflates them far less than wall time.
cpu_seconds ()
{
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

# serve NAME KIND ARGS...: start a server on $tmp/NAME.sock, read-only
# when RO=1, and wait until it listens.  KIND:
#   ours IMAGE [PARAMS...]   nbdkit $NBDKIT_ARGS $plugin file=IMAGE PARAMS
#   file RAW                 nbdkit's file plugin (the ceiling)
#   nbdkit ARGS...           nbdkit ARGS (filters, other plugins)
#   qemu QEMU-NBD-ARGS...    qemu-nbd --shared=0 --persistent ARGS
# Sets nbd_uri[NAME] and spid[NAME].
serve ()
{
    local name=$1 kind=$2 sock=$tmp/$1.sock pidf=$tmp/$1.pid i ro=()
    shift 2
    rm -f "$sock" "$pidf"
    case "$kind" in
    ours|file|nbdkit)
        test "${RO:-}" = 1 && ro=(-r)
        # shellcheck disable=SC2086
        case "$kind" in
        ours) set -- ${NBDKIT_ARGS:-} "$plugin" file="$@" ;;
        file) set -- file "$@" ;;
        esac
        nbdkit -f "${ro[@]}" -U "$sock" --pidfile "$pidf" "$@" \
            >"$tmp/$name.log" 2>&1 &
        ;;
    qemu)
        test "${RO:-}" = 1 && ro=(-r)
        qemu-nbd "${ro[@]}" --shared=0 --persistent -k "$sock" \
            --pid-file="$pidf" "$@" >"$tmp/$name.log" 2>&1 &
        ;;
    *) echo "$0: serve: unknown kind $kind" >&2; exit 1 ;;
    esac
    spid[$name]=$!
    for ((i = 0; i < 300; i++)); do
        test -S "$sock" && test -s "$pidf" && break
        kill -0 "${spid[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    if ! test -S "$sock"; then
        echo "$0: $name did not start:" >&2
        cat "$tmp/$name.log" >&2
        exit 1
    fi
    nbd_uri[$name]="nbd+unix:///?socket=$sock"
}

# unserve NAME: SIGTERM; the server must exit cleanly.
unserve ()
{
    local p=${spid[$1]}
    unset "spid[$1]"
    kill "$p"
    if ! wait "$p"; then
        echo "$0: $1 failed:" >&2
        cat "$tmp/$1.log" >&2
        exit 1
    fi
}

# same_data NAME...: the servers serve the same bytes (64 MiB spread
# evenly over the export, hashed; a full read of a 4 GiB image thrice
# would take longer than the row), else exit.
same_data ()
{
    local n sums
    sums=$(for n in "$@"; do
        nbdsh -u "${nbd_uri[$n]}" -c '
import hashlib
size = h.get_size()
step = min(size, 1 << 20)
md5 = hashlib.md5()
for i in range(64):
    md5.update(h.pread(step, (size - step) * i // 63))
print(md5.hexdigest())'
    done | sort -u | wc -l)
    test "$sums" -eq 1 || { echo "$0: $* disagree on the data" >&2; exit 1; }
}

# seconds CMD...: wall seconds CMD took (its output discarded); fails,
# printing nothing, when CMD fails, so a failed run is never a figure.
seconds ()
{
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null || { echo "$0: $* failed (exit $?)" >&2; return 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

# mibs BYTES SECONDS
mibs () { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f\n", b / 1048576 / s }'; }

# fio_iops URI RW [FIO-ARGS...]: total IOPS of fio's nbd engine, 4 KiB,
# QD32, NJOBS jobs (default 2, so as many connections), RUNTIME seconds.
fio_iops ()
{
    local u=$1 rw=$2 out=$tmp/fio.json
    shift 2
    fio --name=bench --ioengine=nbd --uri="$u" --rw="$rw" --bs=4k \
        --iodepth=32 --numjobs="${NJOBS:-2}" --group_reporting \
        --runtime="${RUNTIME:-10}" --time_based --randrepeat=0 \
        --output-format=json --output="$out" "$@" >/dev/null
    /usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print("%.0f" % (j["read"]["iops"] + j["write"]["iops"]))' "$out"
}

# alternate ROUNDS FN S...: for each round call FN S for every S, the
# order rotating by one each round so no server always goes first;
# FN sets result.  Appends to results[S], and when a server S is
# running (spid[S]), its CPU seconds during FN to results[cpu:S];
# prints each figure to stderr.
alternate ()
{
    local rounds=$1 fn=$2 r k s order c0
    shift 2
    for ((r = 1; r <= rounds; r++)); do
        order=("$@")
        for ((k = 0; k < (r - 1) % $#; k++)); do order=("${order[@]:1}" "${order[0]}"); done
        for s in "${order[@]}"; do
            c0=
            test -z "${spid[$s]:-}" || c0=$(cpu_seconds "${spid[$s]}")
            "$fn" "$s"
            results[$s]+="$result "
            if test -n "$c0"; then
                results[cpu:$s]+="$(awk -v a="$c0" -v b="$(cpu_seconds "${spid[$s]}")" \
                    'BEGIN { print b - a }') "
            fi
            printf '  round %d  %-8s %s\n' "$r" "$s" "$result" >&2
        done
    done
}

# median: of the numbers on stdin, one a line.
median ()
{
    sort -g | awk '{ a[NR] = $1 }
        END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# pair_stats A B: "MEDIAN MIN MAX" of the per-round ratios
# results[A] / results[B].
pair_stats ()
{
    paste -d' ' <(tr ' ' '\n' <<<"${results[$1]}" | grep .) \
                <(tr ' ' '\n' <<<"${results[$2]}" | grep .) |
        awk '{ print $1 / $2 }' | sort -g |
        awk '{ a[NR] = $1 }
            END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
                  printf "%.2f %.2f %.2f\n", m, a[1], a[NR] }'
}

# speedup A B UNIT: pair_stats with the ratio > 1 when A is better:
# A / B for throughput or IOPS, B / A for times (UNIT s).
speedup ()
{
    if test "$3" = s; then pair_stats "$2" "$1"; else pair_stats "$1" "$2"; fi
}

med_of () { tr ' ' '\n' <<<"${results[$1]}" | grep . | median; }

# emit_row KEY WORKLOAD UNIT [NOTE]: the row line of a measured row,
# from results[ours] and results[qemu] (results[$row_ours] and
# results[$row_qemu] when those are set):
#   @row|KEY|WORKLOAD|OURS|QEMU|UNIT|MEDIAN-RATIO|MIN|MAX|PAIRS[|NOTE]
emit_row ()
{
    local o=${row_ours:-ours} q=${row_qemu:-qemu} m lo hi n
    read -r m lo hi < <(speedup "$o" "$q" "$3")
    n=$(tr ' ' '\n' <<<"${results[$o]}" | grep -c .)
    printf '@row|%s|%s|%s|%s|%s|%s|%s|%s|%s%s\n' "$1" "$2" \
        "$(med_of "$o")" "$(med_of "$q")" "$3" "$m" "$lo" "$hi" "$n" "${4:+|$4}"
}

# emit_ceiling KEY WHAT NAME UNIT: a ceiling measured alongside row KEY
# (results[NAME]), and ours (results[$row_ours], default ours) as a
# fraction of it:
#   @ceiling|KEY|WHAT|VALUE|UNIT|MEDIAN-OURS/CEILING|MIN|MAX
emit_ceiling ()
{
    local m lo hi
    read -r m lo hi < <(speedup "${row_ours:-ours}" "$3" "$4")
    printf '@ceiling|%s|%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$(med_of "$3")" "$4" "$m" "$lo" "$hi"
}

# emit_skip KEY REASON: row KEY was not measured, and why (a reference
# that hung, say); bench/suite.sh prints it as not run:
#   @skip|KEY|REASON
emit_skip () { printf '@skip|%s|%s\n' "$1" "$2"; }

# reset_results: before the next row.
reset_results () { results=(); }

# want_row KEY: is KEY among ROWS (space or comma separated; empty: all)?
want_row ()
{
    test -z "${ROWS:-}" && return 0
    [[ " ${ROWS//,/ } " == *" $1 "* ]]
}
