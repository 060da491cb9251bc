#!/bin/bash
# Build the libFuzzer targets for the qcow2 engine and the LUKS code
# with clang, straight from the sources in common/ (not part of the
# autotools build, so CI needs no clang):
#
#   tests/fuzz/build.sh [OUTDIR]          (default tests/fuzz/build)
#
# makes OUTDIR/fuzz-qcow2-read, fuzz-qcow2-write, fuzz-qcow2-tool,
# fuzz-qcow2-luks and fuzz-luks, built with -fsanitize=fuzzer,address,undefined, every key
# derivation bounded by kdf-cap.c (linked with --wrap).  Needs clang and its fuzzer
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
    "$here"/luks-harness.c
    "$here"/kdf-cap.c
)
libs="$(pkg-config --libs $pkgs) -lpthread
      -Wl,--wrap=luks_pbkdf2 -Wl,--wrap=luks_argon2"
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

# Compile everything once (JOBS at a time, default 2: shared
# machines), then each target's main file, and link.
objs=()
mkdir -p "$out/obj"
for src in "${srcs[@]}"; do
    obj=$out/obj/$(basename "$(dirname "$src")")-$(basename "$src" .c).o
    # shellcheck disable=SC2086
    $CC $cflags -c "$src" -o "$obj" &
    objs+=("$obj")
    if test $(( ${#objs[@]} % ${JOBS:-2} )) = 0; then wait; fi
done
wait
target () {                     # target NAME MAIN.c [CFLAGS...]
    local name=$1 main=$2; shift 2
    # shellcheck disable=SC2086
    $CC $cflags "$@" -c "$main" -o "$out/obj/$name.o"
    # shellcheck disable=SC2086
    $CC $cflags -o "$out/$name" "$out/obj/$name.o" "${objs[@]}" $libs
    echo "built $out/$name"
}
target fuzz-qcow2-read "$here/fuzz-qcow2.c" -DFUZZ_MODE=FUZZ_READ
target fuzz-qcow2-write "$here/fuzz-qcow2.c" -DFUZZ_MODE=FUZZ_WRITE
target fuzz-qcow2-tool "$here/fuzz-qcow2.c" -DFUZZ_MODE=FUZZ_TOOL
target fuzz-qcow2-luks "$here/fuzz-qcow2.c" -DFUZZ_MODE=FUZZ_ENCRYPTED
target fuzz-luks "$here/fuzz-qcow2.c" -DFUZZ_LUKS_VOLUMES
