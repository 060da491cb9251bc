#!/usr/bin/env bats
# The luks filter on LUKS1 volumes made by qemu-img and cryptsetup:
# reads equal what QEMU decrypts, and what the filter writes QEMU reads
# back (qemu-img compare through QEMU's own luks driver).

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

setup_file ()
{
    command -v qemu-img >/dev/null && command -v qemu-io >/dev/null ||
        return 0
    cd "$BATS_FILE_TMPDIR"
    # One qemu-made volume for the file (its key derivation is slow).
    make_qemu_luks qemu.luks 4M pass
    qemu-io --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image qemu.luks)" \
        -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1000k 3k' \
        -c 'write -P 0x33 4092k 4k' >/dev/null
    echo -n pass > key
    make_plain plain
}

setup ()
{
    requires qemu-img qemu-io nbdinfo nbdcopy cryptsetup
    requires_module "$LUKS_FILTER"
    cd "$BATS_TEST_TMPDIR"
}

# check_writes VOLUME PASS: write through the filter (a whole new
# payload with nbdcopy, then unaligned writes and zeroes) and have QEMU
# compare the volume with the expected plaintext.
check_writes ()
{
    local vol=$1 pass=$2 size
    start_luks "$vol" passphrase="$pass" || return 1
    size=$(nbdinfo --size "$uri") || return 1
    make_plain model "$size" || return 1
    nbdcopy model "$uri" || return 1
    unaligned_writes "$uri" model || return 1
    cleanup_servers || return 1
    qemu-img compare -q --object "$(qemu_luks_secret "$pass")" --image-opts \
        "$(qemu_luks_image "$vol")" "driver=raw,file.filename=model"
}

@test "luks1 (qemu-img): reads equal qemu's decryption" {
    start_luks "$BATS_FILE_TMPDIR/qemu.luks" passphrase=pass
    [ "$(nbdinfo --size "$uri")" -eq 4194304 ]
    nbdinfo "$uri" | grep -q "block_size_minimum: 512"
    # Everything is data.
    [ "$(map_of "$uri")" = "0 4194304 0" ]
    copy_export "$uri" ours
    qemu-img convert --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image "$BATS_FILE_TMPDIR/qemu.luks")" -O raw theirs
    cmp ours theirs
    cmp <(cut_bytes ours 1024000 3072 /dev/stdout) \
        <(head -c 3072 /dev/zero | tr '\0' '\42')
}

@test "luks1 (qemu-img): writes, unaligned writes and zeroes decrypt in qemu" {
    cp "$BATS_FILE_TMPDIR/qemu.luks" vol
    check_writes vol pass
}

@test "luks1 (cryptsetup aes-xts-plain64): reads and writes" {
    make_cryptsetup_luks1 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key"
    cryptsetup luksDump vol | grep -q "Cipher mode:.*xts-plain64"
    start_luks vol passphrase=+"$BATS_FILE_TMPDIR/key"
    copy_export "$uri" ours
    cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain"
    cleanup_servers
    check_writes vol pass
}

@test "luks1 (cryptsetup aes-cbc-essiv:sha256): reads and writes" {
    make_cryptsetup_luks1 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --cipher aes-cbc-essiv:sha256 --key-size 256
    cryptsetup luksDump vol | grep -q "Cipher mode:.*cbc-essiv:sha256"
    # The passphrase from a file descriptor.
    start_luks vol passphrase=-5 5<"$BATS_FILE_TMPDIR/key"
    copy_export "$uri" ours
    cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain"
    cleanup_servers
    check_writes vol pass
}

@test "luks1: stacked over the nbd plugin (qemu-nbd serving the raw file)" {
    requires qemu-nbd
    cp "$BATS_FILE_TMPDIR/qemu.luks" vol
    qemu-nbd --fork --persistent --pid-file=qemu.pid -k "$PWD/q.sock" \
        -f raw --shared=0 vol </dev/null 3>&-
    _servers+=("qemu-nbd:$(cat qemu.pid)")
    start_nbdkit --filter="$LUKS_FILTER" nbd socket="$PWD/q.sock" passphrase=pass
    copy_export "$uri" ours
    cleanup_servers
    qemu-img convert --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image vol)" -O raw theirs
    cmp ours theirs
}

@test "luks1: stacked over our qcow2 plugin (LUKS volume as qcow2 guest content)" {
    requires_module "$QCOW2_PLUGIN"
    qemu-img convert -f raw -O qcow2 "$BATS_FILE_TMPDIR/qemu.luks" guest.qcow2
    start_nbdkit --filter="$LUKS_FILTER" "$QCOW2_PLUGIN" file=guest.qcow2 \
        passphrase=pass
    copy_export "$uri" ours
    qemu-img convert --object "$(qemu_luks_secret pass)" --image-opts \
        "$(qemu_luks_image "$BATS_FILE_TMPDIR/qemu.luks")" -O raw theirs
    cmp ours theirs
    # Writes through both layers; QEMU decrypts its own qcow2's content.
    make_plain model 4194304
    nbdcopy model "$uri"
    unaligned_writes "$uri" model
    cleanup_servers
    qemu-img compare -q --object "$(qemu_luks_secret pass)" --image-opts \
        "driver=luks,key-secret=sec0,file.driver=qcow2,file.file.filename=guest.qcow2" \
        "driver=raw,file.filename=model"
}
