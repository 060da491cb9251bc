#!/bin/bash
# make check-deb: build the Debian packages from `make dist`'s tarball,
# install them with apt next to Debian's nbdkit, and run
# test-installed.bats (the modules by their short names) against them.
#
#   check-deb.sh TARBALL BUILDDIR SRCDIR
#
# Needs root (apt) and the build dependencies of debian/control (.ci/run
# installs them).  The package build skips its unit tests (nocheck):
# CI has run them already.  Prints each package's files (dpkg -c).  The packages
# are removed again at the end unless KEEP_DEBS=1; nothing of theirs
# may be installed beforehand by anything but this script.

set -euo pipefail

tarball=$(realpath "$1")
builddir=$(realpath "$2")
srcdir=$(realpath "$3")
work=$builddir/deb-build
jobs=$(nproc 2>/dev/null || echo 2)

say () { printf '\n=== %s\n' "$*"; }

if test "$(id -u)" -ne 0; then
    echo "$0: installing the packages needs root" >&2
    exit 1
fi

say "dpkg-buildpackage from $tarball (log: $work/build.log)"
rm -rf "$work"
mkdir -p "$work"
tar -C "$work" -xzf "$tarball"
top=$(find "$work" -mindepth 1 -maxdepth 1 -type d)
if ! (cd "$top" && DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" \
          dpkg-buildpackage -us -uc -b -j"$jobs") >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    echo "$0: dpkg-buildpackage failed" >&2
    exit 1
fi

debs=("$work"/*.deb)
packages=()
for deb in "${debs[@]}"; do
    packages+=("$(dpkg-deb --field "$deb" Package)")
    say "dpkg -c $(basename "$deb")"
    dpkg -c "$deb"
done

remove_packages () { apt-get purge -y "${packages[@]}" >/dev/null 2>&1 || true; }

# Install afresh: apt skips a .deb whose version is already installed.
remove_packages
if test "${KEEP_DEBS:-0}" != 1; then trap remove_packages EXIT; fi
say "apt-get install ${debs[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y "${debs[@]}" </dev/null

say "tests/installed/test-installed.bats"
FUNCTIONS_SH=$builddir/tests/functions.sh LC_ALL=C.UTF-8 \
    bats "$srcdir/tests/installed/test-installed.bats"
