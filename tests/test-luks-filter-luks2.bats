#!/usr/bin/env bats
# The luks filter on LUKS2 volumes made offline by cryptsetup from a
# known plaintext: 512- and 4096-byte sectors, pbkdf2, argon2i and
# argon2id key slots.  Reads must give the plaintext; what the filter
# writes is decrypted by python3-cryptography with the volume key that
# cryptsetup dumps.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

setup_file ()
{
    cd "$BATS_FILE_TMPDIR"
    echo -n pass > key
    make_plain plain
}

setup ()
{
    requires cryptsetup nbdinfo nbdcopy
    requires_module "$LUKS_FILTER"
    /usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
        skip "python3-cryptography is not installed"
    cd "$BATS_TEST_TMPDIR"
}

# check_volume VOLUME SECTOR: reads give the plaintext; writes (whole,
# unaligned, zeroes) decrypt correctly with the independent cipher.
check_volume ()
{
    local vol=$1 sector=$2 off len
    start_luks "$vol" passphrase=+"$BATS_FILE_TMPDIR/key" || return 1
    len=$(nbdinfo --size "$uri") || return 1
    # 12 MiB file, payload from 4 MiB to the end.
    assert_equal "$len" $((8 * 1024 * 1024)) || return 1
    run nbdinfo "$uri"
    assert_output --partial "block_size_minimum: $sector" || return 1
    copy_export "$uri" ours || return 1
    cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain" || return 1

    make_plain model "$len" || return 1
    nbdcopy model "$uri" || return 1
    unaligned_writes "$uri" model || return 1
    cleanup_servers || return 1

    volume_key "$vol" "$BATS_FILE_TMPDIR/key" vk || return 1
    off=$((4 * 1024 * 1024))
    cut_bytes "$vol" "$off" "$len" payload || return 1
    $LUKS_XTS decrypt vk "$sector" 0 payload decrypted || return 1
    cmp decrypted model
}

@test "luks2: 512-byte sectors, pbkdf2" {
    make_cryptsetup_luks2 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    cryptsetup luksDump vol | grep -q "PBKDF:.*pbkdf2"
    check_volume vol 512
}

@test "luks2: 4096-byte sectors, argon2id" {
    make_cryptsetup_luks2 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --sector-size 4096 --pbkdf argon2id --pbkdf-memory 1024 \
        --pbkdf-force-iterations 4
    cryptsetup luksDump vol | grep -q "PBKDF:.*argon2id"
    cryptsetup luksDump vol | grep -q "sector: 4096"
    check_volume vol 4096
}

@test "luks2: 4096-byte sectors, pbkdf2; 512-byte sectors, argon2i" {
    make_cryptsetup_luks2 v1 "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    make_cryptsetup_luks2 v2 "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --pbkdf argon2i --pbkdf-memory 1024 --pbkdf-force-iterations 4
    for v in v1 v2; do
        start_luks $v passphrase=pass
        copy_export "$uri" ours
        cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain"
    done
}

@test "luks2: key-slot= picks one slot; the other passphrase is refused there" {
    make_cryptsetup_luks2 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    echo -n second > key2
    cryptsetup luksAddKey -q --key-file "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 vol key2
    start_luks vol passphrase=second key-slot=1
    copy_export "$uri" ours
    cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain"
    start_luks vol passphrase=second key-slot=0
    run nbdinfo --size "$uri"
    assert_failure
    grep -q "passphrase does not unlock keyslot 0" "$nbdkit_log"
}

@test "luks2: a damaged primary header falls back to the secondary" {
    make_cryptsetup_luks2 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    $LUKS_PATCH vol damage primary
    start_luks vol passphrase=pass -v
    copy_export "$uri" ours
    cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain"
    grep -q "primary header is damaged (checksum mismatch)" "$nbdkit_log"
}

@test "luks2: of two valid headers the one with the higher seqid wins" {
    make_cryptsetup_luks2 vol "$BATS_FILE_TMPDIR/plain" "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    # Keep the primary header (16 KiB), add a key (both copies get a new
    # seqid), then put the old primary back: the secondary is newer and
    # only it knows the second passphrase.
    cut_bytes vol 0 16384 old-primary
    echo -n second > key2
    cryptsetup luksAddKey -q --key-file "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 vol key2
    dd if=old-primary of=vol conv=notrunc status=none
    start_luks vol passphrase=second -v
    copy_export "$uri" ours
    cmp <(head -c "$LUKS_PLAIN_SIZE" ours) "$BATS_FILE_TMPDIR/plain"
    grep -q "secondary header is newer" "$nbdkit_log"
}
