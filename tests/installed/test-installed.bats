#!/usr/bin/env bats
# The installed modules, loaded by their short names as the README's
# "Installing / loading by short name" section and the man pages show
# them: run by tests/installed/check-deb.sh (make check-deb) after it
# has installed the Debian packages, never by `make check` (which tests
# the build tree).  Each server's output is compared with qemu-img's.
#
#   FUNCTIONS_SH=BUILDDIR/tests/functions.sh bats tests/installed/test-installed.bats

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/../functions.sh}"
load "$TESTS_SRCDIR/luks-functions"
load "$TESTS_SRCDIR/compress-functions"

# The system's nbdkit, whatever configure found.
NBDKIT=nbdkit

setup_file ()
{
    cd "$BATS_FILE_TMPDIR"
    # A 64 MiB image with data, a zeroed range, a compressed cluster
    # (written by qemu-img convert -c) and a hole, all made by QEMU.
    qemu-img create -q -f raw data.raw 64M
    qemu-io -f raw -c "write -P 0x61 0 1M" -c "write -P 0x7a 60M 64k" \
        data.raw >/dev/null
    qemu-img convert -c -f raw -O qcow2 data.raw disk.qcow2
    qemu-io -f qcow2 -c "write -z 8M 1M" -c "write -P 0x33 20M 192k" \
        disk.qcow2 >/dev/null
    qemu-img convert -f qcow2 -O raw disk.qcow2 disk.ref
}

setup ()
{
    cd "$BATS_TEST_TMPDIR"
}

# serves_reference [ROOT]: the export at $uri is disk.ref, byte for byte.
serves_reference ()
{
    nbdcopy "$uri" ours.raw || return 1
    cmp ours.raw "$BATS_FILE_TMPDIR/disk.ref"
}

@test "installed: the plugin and the filters are in nbdkit's directories" {
    local plugindir filterdir
    plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
    filterdir=$(nbdkit --dump-config | sed -n 's/^filterdir=//p')
    for f in "$plugindir/nbdkit-qcow2-plugin.so" \
             "$filterdir/nbdkit-qcow2-filter.so" \
             "$filterdir/nbdkit-luks2-filter.so" \
             "$filterdir/nbdkit-compress-filter.so"; do
        test -f "$f" || fail "$f is not installed"
    done
    # nbdkit resolves each short name to the installed file.
    run nbdkit qcow2 --dump-plugin
    assert_success
    assert_line "path=$plugindir/nbdkit-qcow2-plugin.so"
    for f in qcow2 luks2 compress; do
        run nbdkit --filter="$f" null --help
        assert_success
        assert_line --partial "filter: $f ("
        assert_line "($filterdir/nbdkit-$f-filter.so)"
    done
}

@test "installed: nbdkit qcow2 file=disk.qcow2 serves what qemu-img reads" {
    start_nbdkit qcow2 file="$BATS_FILE_TMPDIR/disk.qcow2"
    serves_reference
}

@test "installed: --filter=qcow2 over nbdkit's file plugin" {
    start_nbdkit --filter=qcow2 file "$BATS_FILE_TMPDIR/disk.qcow2"
    serves_reference
}

@test "installed: -r --filter=qcow2 over nbdkit's curl plugin" {
    requires lighttpd
    start_http_server "$BATS_FILE_TMPDIR"
    start_nbdkit -r --filter=qcow2 curl "$http_url/disk.qcow2"
    serves_reference
}

@test "installed: --filter=compress qcow2 file=out.qcow2 writes compressed clusters" {
    qemu-img create -q -f qcow2 out.qcow2 64M
    start_nbdkit --filter=compress qcow2 file=out.qcow2
    nbdcopy --flush "$BATS_FILE_TMPDIR/disk.ref" "$uri"
    cleanup_servers
    check_clean out.qcow2
    run qemu-img compare -f qcow2 -F raw out.qcow2 "$BATS_FILE_TMPDIR/disk.ref"
    assert_success
    # Every data cluster is compressed (all of them shrink).
    local allocated compressed
    allocated=$(check_field out.qcow2 allocated-clusters)
    compressed=$(check_field out.qcow2 compressed-clusters)
    echo "allocated $allocated, compressed $compressed"
    assert [ "$compressed" -gt 0 ]
    assert_equal "$compressed" "$allocated"
}

@test "installed: --filter=luks2 file volume.luks passphrase=+FILE, read back by qemu-img" {
    echo -n secret-pass > key
    make_qemu_luks volume.luks 16M secret-pass
    head -c 16M /dev/urandom > plain
    start_nbdkit --filter=luks2 file volume.luks passphrase=+key
    nbdcopy --flush plain "$uri"
    cleanup_servers
    qemu-img convert --object "$(qemu_luks_secret secret-pass)" \
        --image-opts "$(qemu_luks_image volume.luks)" -O raw back.raw
    cmp plain back.raw
}

@test "installed: --filter=luks still loads nbdkit's own filter" {
    local filterdir
    filterdir=$(nbdkit --dump-config | sed -n 's/^filterdir=//p')
    run nbdkit --filter=luks null --help
    assert_success
    assert_line "filter: luks (nbdkit luks filter)"
    assert_line "($filterdir/nbdkit-luks-filter.so)"
    run dpkg -S "$filterdir/nbdkit-luks-filter.so"
    assert_success
    assert_output "nbdkit: $filterdir/nbdkit-luks-filter.so"
    # Nothing of nbdkit's package was replaced.
    run dpkg --verify nbdkit
    assert_success
    assert_output ""
}

@test "installed: qcow2-tool on PATH: info as qemu-img's, check clean" {
    run command -v qcow2-tool
    assert_output /usr/bin/qcow2-tool
    run qcow2-tool info "$BATS_FILE_TMPDIR/disk.qcow2"
    assert_success
    assert_equal "$output" "$(qemu-img info "$BATS_FILE_TMPDIR/disk.qcow2")"
    run qcow2-tool check "$BATS_FILE_TMPDIR/disk.qcow2"
    assert_success
}

@test "installed: man finds every page" {
    local page
    for page in nbdkit-qcow2-plugin nbdkit-qcow2-filter nbdkit-luks2-filter \
                nbdkit-compress-filter qcow2-tool; do
        run man -w "$page"
        assert_success
        assert_output "/usr/share/man/man1/$page.1.gz"
    done
}
