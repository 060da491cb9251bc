#!/bin/bash
# Issue 10's benchmark table in one command: runs the row scripts
# (each measures its rows side by side with qemu-nbd, servers
# alternating, the order rotating each round, ratios per pair of
# rounds), collects their row lines, and prints one table: row,
# workload, ours, qemu-nbd, median ratio, pair range, goal, met.
# bench/README.md says what each row measures and how to read it.
#
#   bench/suite.sh [OPTIONS]
#     --rounds=N     pairs per row (default 5; the issue asks >= 3)
#     --quick        3 rounds, 256M data, 1G random-read image, 5 s fio runs,
#                    a 4G image of 1G data for the tool rows
#     --self-check   1 round, tiny sizes, 1 s fio runs: does every row run?
#                    (exits non-zero if a row that ran printed no figure)
#     --rows=A,B     only these rows (--list names them)
#     --list         print the rows and the script of each, and exit
#     --workdir=DIR  data files, kept between runs (default bench/out)
#                    (fio rows run RUNTIME seconds, default 10, as the issue says)
#     --logdir=DIR   each script's output (default: a new temporary dir)
#
# Installs nothing: it names what is missing (fio, nbdcopy, qemu-nbd,
# ...) and prints the rows that need it as "not run".  A row script
# that is absent (another branch has not landed it) is "not run" too.
#
# A row script is called as `ROUNDS=N ROWS="its rows" SIZE=... SCRIPT N`
# and prints, among anything else, lines (bench/lib.sh emit_row):
#   @row|KEY|WORKLOAD|OURS|QEMU|UNIT|MEDIAN-RATIO|MIN|MAX|PAIRS[|NOTE]
#   @ceiling|KEY|WHAT|VALUE|UNIT|MEDIAN-OURS/CEILING|MIN|MAX
#   @skip|KEY|REASON      (not measured: "not run (skipped by SCRIPT: REASON)")
# For scripts that do not print them yet, legacy_rows below reads their
# own tables.

set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# KEY|SCRIPT|GOAL|NEEDS-FIO|WORKLOAD (issue 10's table, in its order,
# then issue 12's: the qcow2 filter; filter-read compares it with our
# plugin, not qemu-nbd; then issue 13's: qcow2-tool against qemu-img)
rows_table='plain-read|read-bench.sh|1.3|0|nbdcopy 1 GiB to null:
zlib-read|compressed-read-bench.sh|2.2|0|nbdcopy 1 GiB to null:, zlib image
zstd-read|compressed-read-bench.sh|2.0|0|nbdcopy 1 GiB to null:, zstd image
luks-read|qcow2-encrypt-bench.sh|3.0|0|nbdcopy 1 GiB to null:, encrypted
randread-alloc|read-bench.sh|2.0|1|fio 4K randread QD32 x 2, allocated 4 GiB
randread-zlib|compressed-read-bench.sh|2.0|1|fio 4K randread QD32 x 2, zlib image
randwrite-fresh|write-bench.sh|1.5|1|fio 4K randwrite QD32 x 2, 10 s, fresh 256 GiB
randwrite-prealloc|write-bench.sh|1.5|1|fio 4K randwrite QD32 x 2, preallocated
randwrite-overlay|write-bench.sh|1.5|1|fio 4K randwrite QD32 x 2, fresh overlay, 12 GiB 64K backing
seq-write|write-bench.sh|1.5|0|nbdcopy --flush 1 GiB into a fresh image
compwrite-zlib|compress-bench.sh|4.0|0|compress filter, zlib (size <= 1.05 x qemu)
compwrite-zstd|compress-bench.sh|1.5|0|compress filter, zstd (size <= 1.05 x qemu)
scale-sparse|scale-bench.sh|1.5|0|1 TiB sparse: nbdcopy of the allocated data
scale-chain|scale-bench.sh|1.5|0|16-deep backing chain: nbdcopy of the data
filter-read|filter-bench.sh|0.9|0|qcow2 filter over file / our plugin, 1 GiB
filter-latency|filter-bench.sh|2.0|0|qcow2 filter over nbd, a layer 1 ms away
filter-http|filter-bench.sh|1.5|0|qcow2 filter over curl, lighttpd, against qemu-img convert
filter-randwrite|filter-bench.sh|1.5|1|qcow2 filter, fio 4K randwrite, falloc image
tool-check|tool-bench.sh|1.0|0|qcow2-tool check, 16 GiB image, 4 GiB data
tool-snapshot|tool-bench.sh|1.0|0|qcow2-tool snapshot -c, 16 GiB, 4 GiB data
tool-commit|tool-bench.sh|1.0|0|qcow2-tool commit, 1 GiB overlay into 16 GiB'

rounds=5 quick=0 selfcheck=0 select= logdir=
export WORKDIR=${WORKDIR:-$here/out}
for arg in "$@"; do
    case "$arg" in
    --rounds=*) rounds=${arg#*=} ;;
    --quick) quick=1 rounds=3 ;;
    --self-check) selfcheck=1 rounds=1 ;;
    --rows=*) select=${arg#*=} ;;
    --workdir=*) WORKDIR=${arg#*=} ;;
    --logdir=*) logdir=${arg#*=} ;;
    --list)
        printf '%-20s %-24s %s\n' row script workload
        while IFS='|' read -r k s g f w; do printf '%-20s %-24s %s\n' "$k" "$s" "$w"; done <<<"$rows_table"
        exit 0 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "$0: unknown option $arg (--help)" >&2; exit 2 ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "$0: --rounds wants a positive number" >&2; exit 2; }
if ((quick)); then
    export SIZE=${SIZE:-256M} RANDREAD_SIZE=${RANDREAD_SIZE:-1G} RUNTIME=${RUNTIME:-5}
    export OVERLAY_SIZE=${OVERLAY_SIZE:-4G}
    export TOOL_SIZE=${TOOL_SIZE:-4G} TOOL_DATA=${TOOL_DATA:-1G}
fi
if ((selfcheck)); then
    export SIZE=16M RANDREAD_SIZE=32M RUNTIME=1
    export PREALLOC_SIZE=64M OVERLAY_SIZE=64M ALLOC_SIZE=1G LATENCY_SIZE=16M
    export TOOL_SIZE=64M TOOL_DATA=16M SCALE_RUNS=32
fi
export RUNTIME=${RUNTIME:-10}
test -n "$logdir" || logdir=$(mktemp -d /tmp/bench-suite.XXXXXX)
mkdir -p "$logdir" "$WORKDIR"

if test -n "$select"; then
    for k in ${select//,/ }; do
        grep -q "^$k|" <<<"$rows_table" || { echo "$0: no row $k (--list)" >&2; exit 2; }
    done
fi
selected () { test -z "$select" || [[ ",$select," == *",$1,"* ]]; }

# What is missing (nothing is installed).
missing=()
for c in nbdkit qemu-nbd qemu-img qemu-io nbdcopy nbdinfo nbdsh fio; do
    command -v "$c" >/dev/null || missing+=("$c")
done
have_fio=1
if ! command -v fio >/dev/null || ! fio --enghelp 2>/dev/null | grep -qw nbd; then
    have_fio=0
    command -v fio >/dev/null && missing+=("fio's nbd engine")
fi
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (apt-get install fio libnbd-bin qemu-utils nbdkit)" >&2
fi
for c in nbdkit qemu-nbd qemu-img nbdcopy; do
    command -v "$c" >/dev/null || { echo "$0: cannot run any row without $c" >&2; exit 1; }
done

declare -A status=() line=() ceil=()

# legacy_rows SCRIPT LOG: row lines from the table that write-bench.sh
# prints today (its per-round figures, so the pair range is real).
legacy_rows ()
{
    case "$1" in
    write-bench.sh)
        awk '
        function row(key, w, kind, unit, invert,   r, n, i, j, t, m, lo, hi, mo, mq) {
            n = 0
            for (r = 1; r <= maxr; r++)
                if ((kind, "ours", r) in v && (kind, "qemu", r) in v) {
                    rt[++n] = invert ? v[kind, "qemu", r] / v[kind, "ours", r] \
                                     : v[kind, "ours", r] / v[kind, "qemu", r]
                    o[n] = v[kind, "ours", r]; q[n] = v[kind, "qemu", r]
                }
            if (!n) return
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) {
                if (rt[j] < rt[i]) { t = rt[i]; rt[i] = rt[j]; rt[j] = t }
                if (o[j] < o[i]) { t = o[i]; o[i] = o[j]; o[j] = t }
                if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
            }
            m = n % 2 ? rt[(n + 1) / 2] : (rt[n / 2] + rt[n / 2 + 1]) / 2
            mo = n % 2 ? o[(n + 1) / 2] : (o[n / 2] + o[n / 2 + 1]) / 2
            mq = n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
            printf "@row|%s|%s|%s|%s|%s|%.2f|%.2f|%.2f|%d\n", key, w, mo, mq, unit, m, rt[1], rt[n], n
        }
        $1 == "round" && $4 == "copy" { v["copy", $3, $2] = $5; maxr = $2 }
        $1 == "round" && $4 == "iops" { v[$5, $3, $2] = $6; maxr = $2 }
        END {
            row("seq-write", "nbdcopy --flush into a fresh image (write-bench.sh)", "copy", "s", 1)
            row("randwrite-fresh", "fio 4K randwrite QD32 (write-bench.sh), fresh", "fresh", "IOPS", 0)
            row("randwrite-prealloc", "fio 4K randwrite QD32 (write-bench.sh), falloc", "falloc", "IOPS", 0)
            row("randwrite-overlay", "fio 4K randwrite QD32 (write-bench.sh), overlay", "overlay", "IOPS", 0)
        }' "$2" ;;
    esac
}

# Run each script once for its selected rows.
scripts=$(awk -F'|' '{ print $2 }' <<<"$rows_table" | awk '!seen[$0]++')
for script in $scripts; do
    keys=()
    while IFS='|' read -r k s g f w; do
        test "$s" = "$script" || continue
        selected "$k" || continue
        if ((f && !have_fio)); then status[$k]="not run (no fio nbd engine)"; continue; fi
        keys+=("$k")
    done <<<"$rows_table"
    ((${#keys[@]})) || continue
    if ! test -x "$here/$script"; then
        for k in "${keys[@]}"; do status[$k]="not run (no bench/$script)"; done
        continue
    fi
    log=$logdir/${script%.sh}.log
    echo "== bench/$script (${keys[*]}), $rounds rounds; log $log" >&2
    rc=0
    ROUNDS=$rounds ROWS="${keys[*]}" "$here/$script" "$rounds" >"$log" 2>&1 || rc=$?
    own=1
    if ! grep -q '^@row|' "$log"; then
        own=0
        legacy_rows "$script" "$log" >>"$log"
    fi
    while IFS='|' read -r tag k rest; do
        case "$tag" in
        @row) line[$k]=$rest ;;
        @ceiling) ceil[$k]+="$rest"$'\n' ;;
        @skip) status[$k]="not run (skipped by bench/$script: $rest)" ;;
        esac
    done < <(grep -E '^@(row|ceiling|skip)\|' "$log")
    for k in "${keys[@]}"; do
        test -n "${line[$k]:-}" && continue
        if ((rc)); then status[$k]="failed (exit $rc, see $log)"
        elif test -n "${status[$k]:-}"; then :     # @skip
        elif ((own)); then status[$k]="no figure (see $log)"
        else status[$k]="not run (bench/$script does not measure it)"; fi
    done
done

# The table.
fmt='%-18s %-44s %10s %10s %6s %11s %5s %4s\n'
echo
echo "issue 10 benchmark, $rounds rounds a row, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2059
printf "$fmt" row workload ours qemu-nbd ratio "pair range" goal met
unmet=0 nofigure=0
while IFS='|' read -r k s goal f w; do
    selected "$k" || continue
    if test -z "${line[$k]:-}"; then
        # shellcheck disable=SC2059
        printf "$fmt" "$k" "${w:0:44}" - - - - "$goal" "${status[$k]:-not run}"
        [[ ${status[$k]:-} == "not run"* ]] || nofigure=1
        continue
    fi
    IFS='|' read -r rw ours qemu unit m lo hi n note <<<"${line[$k]}"
    met=$(awk -v m="$m" -v g="$goal" 'BEGIN { print (m >= g) ? "yes" : "no" }')
    # plain-read: also within 5 % of nbdkit's file plugin on the raw file.
    if test "$k" = plain-read; then
        fr=$(grep '^[^|]*file plugin' <<<"${ceil[$k]:-}" | cut -d'|' -f4)
        test -n "$fr" && awk -v r="$fr" 'BEGIN { exit !(r < 0.95) }' && met=no
    fi
    # compressed writes: output at most 1.05 x qemu's.
    outsize=$(sed -n 's/.*size ours\/qemu \([0-9.]*\).*/\1/p' <<<"$note")
    if test -n "$outsize" && awk -v r="$outsize" 'BEGIN { exit !(r > 1.05) }'; then met=no
    fi
    test "$met" = yes || unmet=1
    # shellcheck disable=SC2059
    printf "$fmt" "$k" "${rw:0:44}" "$ours" "$qemu" "${m}x" "$lo-$hi" "$goal" "$met"
    printf '%-18s   %s, %s pairs%s\n' "" "$unit" "$n" "${note:+; $note}"
    while IFS='|' read -r what val cu cm clo chi; do
        test -n "$what" || continue
        printf '%-18s   ceiling: %s %s %s; ours/ceiling %s (%s-%s)\n' "" "$what" "$val" "$cu" "$cm" "$clo" "$chi"
    done <<<"${ceil[$k]:-}"
done <<<"$rows_table"
echo "ratio: ours / qemu-nbd per pair of rounds (throughput or IOPS; > 1: ours faster), median and range"
echo "       (times, unit s: qemu's time / ours; the tool-* rows time qemu-img, not qemu-nbd)"
echo "logs: $logdir"
((selfcheck)) && exit $nofigure
exit 0
