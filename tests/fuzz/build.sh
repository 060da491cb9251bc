#!/bin/bash
# Build the libFuzzer targets for the qcow2 engine with clang, straight
# from the sources in common/ (not part of the autotools build, so CI
# needs no clang):
#
#   tests/fuzz/build.sh [OUTDIR]          (default tests/fuzz/build)
#
# makes OUTDIR/fuzz-qcow2-read and OUTDIR/fuzz-qcow2-write, built with
# -fsanitize=fuzzer,address,undefined.  Needs clang and its fuzzer
# runtime (Debian: clang libclang-rt-14-dev) and the -dev packages the
# normal build needs.  run.sh shows how to run them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$here/build}
CC=${CC:-clang}
mkdir -p "$out"

# A config.h of our own: the engine needs _GNU_SOURCE and the optional
# libraries that are present (as configure would find them).
pkgs="zlib libzstd gnutls"
{
    echo "#define _GNU_SOURCE 1"
    if pkg-config --exists libisal || test -e /usr/include/isa-l/igzip_lib.h; then
        echo "#define HAVE_ISAL 1"; have_isal=1
    fi
    if pkg-config --exists json-c; then
        echo "#define HAVE_JSONC 1"; pkgs="$pkgs json-c"
    fi
    if pkg-config --exists libargon2; then
        echo "#define HAVE_ARGON2 1"; pkgs="$pkgs libargon2"
    fi
} > "$out/config.h"

srcs=(
    "$top"/common/utils/diag.c
    "$top"/common/io/io-fd.c
    "$top"/common/codec/codec.c
    "$top"/common/codec/codec-thread.c
    "$top"/common/codec/codec-deflate.c
    "$top"/common/codec/codec-deflate-header.c
    "$top"/common/codec/codec-zlib.c
    "$top"/common/codec/codec-zstd.c
    "$top"/common/luks/*.c
    "$top"/common/qcow2/*.c
    "$here"/harness.c
)
libs="$(pkg-config --libs $pkgs) -lpthread"
if test -n "${have_isal:-}"; then
    srcs+=("$top"/common/codec/codec-isal.c)
    libs="$libs $(pkg-config --libs libisal 2>/dev/null || echo -lisal)"
fi
# Unit tests and tools have their own main().
mapfile -t srcs < <(printf '%s\n' "${srcs[@]}" |
                    grep -Ev '/(test-[^/]*|[a-z]*-tool)\.c$')

cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -include $out/config.h -I$out
        -I$top/common/include -I$top/common/utils -I$top/common/io
        -I$top/common/codec -I$top/common/qcow2 -I$top/common/luks -I$here
        $(pkg-config --cflags $pkgs)"

# Compile everything once (JOBS at a time), link both targets.
objs=()
pids=()
for src in "${srcs[@]}" "$here/fuzz-qcow2.c"; do
    obj=$out/obj/$(basename "$(dirname "$src")")-$(basename "$src" .c).o
    mkdir -p "$out/obj"
    # shellcheck disable=SC2086
    $CC $cflags -c "$src" -o "$obj" & pids+=($!)
    # At most JOBS compilers at once (default 2: shared machines).
    if test "${#pids[@]}" -ge "${JOBS:-2}"; then
        wait "${pids[0]}"; pids=("${pids[@]:1}")
    fi
    if test "$src" != "$here/fuzz-qcow2.c"; then objs+=("$obj"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
# shellcheck disable=SC2086
$CC $cflags -DFUZZ_MODE=FUZZ_WRITE -c "$here/fuzz-qcow2.c" \
    -o "$out/obj/fuzz-qcow2-write.o"
# shellcheck disable=SC2086
$CC $cflags -o "$out/fuzz-qcow2-read" "$out/obj/fuzz-fuzz-qcow2.o" \
    "${objs[@]}" $libs
# shellcheck disable=SC2086
$CC $cflags -o "$out/fuzz-qcow2-write" "$out/obj/fuzz-qcow2-write.o" \
    "${objs[@]}" $libs
echo "built $out/fuzz-qcow2-read $out/fuzz-qcow2-write"
