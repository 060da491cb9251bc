#!/bin/bash
# Quick start for a fresh Debian 12 machine (run as root in the checkout).
#
#   ./quickstart.sh serve [IMAGE]   install what is missing, build, and
#                                   serve IMAGE read-only over NBD on
#                                   localhost (a small demo image made
#                                   with qemu-img when IMAGE is omitted)
#   ./quickstart.sh test            install what is missing, build, and
#                                   run the whole test suite twice: a
#                                   plain build in this tree and a
#                                   sanitizer build in build-sanitize/;
#                                   the last line says "N passed, N failed"
#                                   (TESTS="a b" in the environment runs
#                                   just those, as make check TESTS=)
#
# A check program that does not build, and every test that did not run
# (the files declare how many: bats --count), count as failures.
#
# .ci/run runs `./quickstart.sh test`.

set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

# Everything the build and the tests use, as Debian 12 packages.
packages=(
    # build
    build-essential autoconf automake libtool pkg-config perl
    nbdkit nbdkit-plugin-dev
    zlib1g-dev libzstd-dev libgnutls28-dev
    libdeflate-dev libisal-dev libjson-c-dev libargon2-dev
    # tests: the reference tools and the clients
    bats bats-assert bats-support qemu-utils libnbd-bin python3 python3-libnbd
    cryptsetup-bin python3-cryptography
    # the qcow2 filter over nbdkit's curl plugin (a local web server),
    # and QEMU's http driver beside it (bench/filter-bench.sh)
    lighttpd curl qemu-block-extra
    # kill -9 at every write of qcow2-tool's edits (strace's fault
    # injection, tests/test-qcow2-tool-*.bats)
    strace
    # fio's nbd engine: the benchmarks' random-I/O rows, which
    # tests/test-bench-suite.bats runs at tiny sizes
    fio
    # the fuzzers (tests/fuzz/, run briefly by .ci/run)
    clang libclang-rt-14-dev
    # the Debian packages and their test (make check-deb, run by .ci/run)
    debhelper man-db
)

say () { printf '\n=== %s\n' "$*"; }

install_missing ()
{
    local missing=() p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q '^install ok installed$' || missing+=("$p")
    done
    test ${#missing[@]} -eq 0 && return 0

    say "installing: ${missing[*]}"
    if test "$(id -u)" -ne 0; then
        echo "$0: these packages are missing; run as root or install them:" >&2
        echo "  apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${missing[@]}"
}

# build_here [CONFIGURE-ARGS...]: the usual in-tree build; configure
# runs again when the tree was configured with other arguments.
build_here ()
{
    if test ! -x configure || test configure.ac -nt configure; then
        say "autoreconf"
        autoreconf -fi || return 1
    fi
    if test ! -f config.status || test configure -nt config.status ||
       test "$(./config.status --config | tr -d "'")" != "$*"; then
        say "configure $*"
        ./configure "$@" || return 1
    fi
    say "make"
    make -j"$jobs"
}

# ----------------------------------------------------------------------
# serve

demo_image ()
{
    local img=${TMPDIR:-/tmp}/nbdkit-qcow2-demo.qcow2
    if test ! -f "$img"; then
        say "making a demo image: $img" >&2
        qemu-img create -q -f qcow2 "$img" 64M
        # Some text at the start, a zeroed cluster, and data near the end.
        qemu-io -f qcow2 \
            -c "write -P 0x61 0 1M" \
            -c "write -z 8M 1M" \
            -c "write -P 0x7a 60M 64k" "$img" >/dev/null
    fi
    echo "$img"
}

serve ()
{
    local img=${1:-} port=${PORT:-10809}
    install_missing
    build_here --enable-werror
    if test -z "$img"; then
        img=$(demo_image)
    fi

    cat <<EOF

=== serving $img read-only on nbd://localhost:$port (Ctrl-C stops it)

Connect from another terminal with, for example:
    nbdinfo nbd://localhost:$port
    nbdinfo --map nbd://localhost:$port
    qemu-img info nbd://localhost:$port
    nbdcopy nbd://localhost:$port copy.raw
    qemu-img convert -f raw -O qcow2 nbd://localhost:$port copy.qcow2

To serve it writable instead:
    nbdkit -f -i 127.0.0.1 -p $port $top/qcow2.so file=$img

EOF
    exec nbdkit -f -r -i 127.0.0.1 -p "$port" "$top/qcow2.so" file="$img"
}

# ----------------------------------------------------------------------
# test

# A copy of the source (tracked and new files, no build outputs) for the
# sanitizer build: configure refuses a VPATH build from a source tree
# that is itself configured, and make would pick up its objects.
copy_source ()
{
    local dest=$1
    rm -rf "$dest"
    mkdir -p "$dest"
    if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$top" ls-files -z --cached --others --exclude-standard |
            tar -C "$top" --null -T - --ignore-failed-read -cf - 2>/dev/null |
            tar -C "$dest" -xf -
    else
        tar -C "$top" --exclude=./build-sanitize -cf - . | tar -C "$dest" -xf -
        if test -f "$dest/Makefile"; then make -C "$dest" distclean >/dev/null; fi
    fi
}

# tally: read automake .trs files named on stdin (NUL-separated) and
# print "PASSED FAILED SKIPPED".
tally ()
{
    xargs -0 -r cat |
        awk '/^:test-result: (PASS|XFAIL)/ { p++ }
             /^:test-result: (FAIL|XPASS|ERROR)/ { f++ }
             /^:test-result: SKIP/ { s++ }
             END { printf "%d %d %d\n", p, f, s }'
}

# The .trs files of the plain build (this tree minus build-sanitize/)
# and of the sanitizer build.
plain_trs () { find "$top" -path "$top/build-sanitize" -prune -o -name '*.trs' -print0; }
sanitize_trs () { find "$top/build-sanitize/build" -name '*.trs' -print0 2>/dev/null; }

build_failures=()

# check_make BUILDDIR: `make -k check` there, the check programs first
# (their build fails loudly here, where make -k would only make their
# tests vanish or skip), then the tests.  TESTS from the environment
# narrows the run.  Fails when something did not build; failed tests
# are counted from the .trs files instead.
check_make ()
{
    local dir=$1 built=0
    local narrow=()
    if test -n "${TESTS+set}"; then narrow=(TESTS="$TESTS"); fi
    make -C "$dir" -k -j"$jobs" check TESTS= || built=1
    if test "$built" -ne 0; then
        echo "check programs FAILED to build in $dir" >&2
        build_failures+=("check programs FAILED to build in $dir")
    fi
    make -C "$dir" -k -j"$jobs" check "${narrow[@]}" || true
    return "$built"
}

# tests_not_run BUILDDIR SRCDIR: for each test log make check should
# have written (automake's TEST_LOGS in every directory), compare the
# results in its .trs file with what the test declares (bats --count
# for a .bats file, else one); print one line per difference and, last,
# the number of tests that did not run (or ran in excess).
tests_not_run ()
{
    local build=$1 src=$2 am dir logs log base want got missing=0
    local narrow=()
    if test -n "${TESTS+set}"; then narrow=(TESTS="$TESTS"); fi
    while read -r am; do
        dir=$(dirname "$am")
        test -f "$build/$dir/Makefile" || continue
        logs=$(make -s -C "$build/$dir" --no-print-directory "${narrow[@]}" \
                   --eval='qs-print-logs: ; @echo $(TEST_LOGS)' qs-print-logs) ||
            { echo "$dir: cannot list its tests" >&2; missing=$((missing + 1)); continue; }
        for log in $logs; do
            base=${log%.log}
            want=1
            if test -f "$src/$dir/$base.bats"; then
                want=$(bats --count "$src/$dir/$base.bats") || want=
            fi
            if ! [[ "$want" =~ ^[0-9]+$ ]]; then
                echo "  $dir/$base: bats --count fails"
                missing=$((missing + 1))
                continue
            fi
            got=0
            if test -f "$build/$dir/$base.trs"; then
                got=$(grep -c '^:test-result:' "$build/$dir/$base.trs" || true)
            fi
            if test "$got" -ne "$want"; then
                echo "  $dir/$base: $got of $want tests ran"
                missing=$((missing + (want > got ? want - got : got - want)))
            fi
        done
    done < <(cd "$src" && find . -name Makefile.am -not -path './build-sanitize/*' | sort)
    echo "$missing"
}

# failed_tests: one line per failed test, from the test logs.
failed_tests ()
{
    { plain_trs; sanitize_trs; } |
        sed -z 's/\.trs$/.log/' |
        xargs -0 -r grep -h -E '^(FAIL|ERROR|XPASS):' 2>/dev/null || true
}

run_tests ()
{
    local broken=0 plain_ok=1 sanitize_ok=1
    local sdir=$top/build-sanitize
    install_missing

    # 1. The plain build, in this tree.
    plain_trs | xargs -0 -r rm -f
    if build_here --enable-werror; then
        say "make check (plain build)"
        check_make "$top" || broken=$((broken + 1))
    else
        echo "plain build FAILED" >&2
        plain_ok=0
        broken=$((broken + 1))
    fi

    # 2. The sanitizer build, VPATH, in build-sanitize/build (from scratch).
    say "sanitizer build in $sdir"
    rm -rf "$sdir"
    copy_source "$sdir/src"
    mkdir -p "$sdir/build"
    if (cd "$sdir/src" && autoreconf -fi >/dev/null 2>&1) &&
       (cd "$sdir/build" && ../src/configure --enable-werror --enable-sanitizers >/dev/null &&
        make -j"$jobs"); then
        say "make check (sanitizer build)"
        check_make "$sdir/build" || broken=$((broken + 1))
    else
        echo "sanitizer build FAILED" >&2
        sanitize_ok=0
        broken=$((broken + 1))
    fi

    # Sanitizer reports from servers (unit tests fail by themselves).
    local reports=0
    if test -d "$sdir/build/tests/sanitizer-logs"; then
        reports=$(find "$sdir/build/tests/sanitizer-logs" -type f | wc -l)
    fi
    if test "$reports" -gt 0; then
        say "sanitizer reports"
        find "$sdir/build/tests/sanitizer-logs" -type f -exec sh -c \
            'for f; do echo "--- $f"; cat "$f"; done' sh {} +
    fi

    local p1 f1 s1 p2 f2 s2 p f lost1 lost2 out1 out2
    read -r p1 f1 s1 < <(plain_trs | tally)
    read -r p2 f2 s2 < <(sanitize_trs | tally)
    # Tests that did not run count as failed: an unbuilt test program,
    # a bats file that stopped early.
    out1=$(test $plain_ok = 1 && tests_not_run "$top" "$top" || echo 0)
    out2=$(test $sanitize_ok = 1 && tests_not_run "$sdir/build" "$sdir/src" || echo 0)
    lost1=${out1##*$'\n'} lost2=${out2##*$'\n'}
    say "results"
    echo "plain build:     $p1 passed, $f1 failed, $s1 skipped, $lost1 not run$(test $plain_ok = 1 || echo ', BUILD FAILED')"
    echo "sanitizer build: $p2 passed, $f2 failed, $s2 skipped, $lost2 not run$(test $sanitize_ok = 1 || echo ', BUILD FAILED')"
    echo "sanitizer reports from servers: $reports"
    failed_tests | sed 's/^/  /'
    if test ${#build_failures[@]} -gt 0; then printf '  %s\n' "${build_failures[@]}"; fi
    { test "$out1" = "$lost1" || echo "${out1%$'\n'*}"
      test "$out2" = "$lost2" || echo "${out2%$'\n'*}"; }

    p=$((p1 + p2))
    f=$((f1 + f2 + lost1 + lost2 + broken + reports))
    echo "$p passed, $f failed"
    test "$f" -eq 0
}

case "${1:-}" in
    serve) shift; serve "$@" ;;
    test) run_tests ;;
    *)
        echo "usage: $0 serve [IMAGE] | $0 test" >&2
        exit 2
        ;;
esac
