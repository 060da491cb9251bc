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
    # the fuzzers (tests/fuzz/, run briefly by .ci/run)
    clang libclang-rt-14-dev
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
        make -k -j"$jobs" check || true
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
        (cd "$sdir/build" && make -k -j"$jobs" check) || true
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

    local p1 f1 s1 p2 f2 s2 p f
    read -r p1 f1 s1 < <(plain_trs | tally)
    read -r p2 f2 s2 < <(sanitize_trs | tally)
    say "results"
    echo "plain build:     $p1 passed, $f1 failed, $s1 skipped$(test $plain_ok = 1 || echo ', BUILD FAILED')"
    echo "sanitizer build: $p2 passed, $f2 failed, $s2 skipped$(test $sanitize_ok = 1 || echo ', BUILD FAILED')"
    echo "sanitizer reports from servers: $reports"
    failed_tests | sed 's/^/  /'

    p=$((p1 + p2))
    f=$((f1 + f2 + broken + reports))
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
