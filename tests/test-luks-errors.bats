#!/usr/bin/env bats
# The luks filter refuses what it cannot or must not open with one clear
# message, and the server survives: wrong passphrase, damaged headers,
# truncated key areas, unknown ciphers, unsupported LUKS2 features.
# Secrets never reach the log, even with -v.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

setup_file ()
{
    command -v cryptsetup >/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    echo -n pass > key
    make_plain plain
    make_cryptsetup_luks1 luks1 plain key
    make_cryptsetup_luks2 luks2 plain key --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000
}

setup ()
{
    requires cryptsetup nbdinfo
    requires_module "$LUKS_FILTER"
    cd "$BATS_TEST_TMPDIR"
}

# refused VOLUME MESSAGE [FILTER-ARGS...]: a connection fails, the log
# holds MESSAGE exactly once, and the server is still alive.
refused ()
{
    local vol=$1 msg=$2
    shift 2
    start_luks "$vol" "${@:-passphrase=pass}" || return 1
    run nbdinfo --size "$uri"
    assert_failure || return 1
    cat "$nbdkit_log"
    assert_equal "$(grep -cF -- "$msg" "$nbdkit_log")" 1 || return 1
    server_alive "$nbdkit_pid" || fail "the server died"
}

@test "luks errors: wrong passphrase (LUKS1 and LUKS2)" {
    refused "$BATS_FILE_TMPDIR/luks1" \
        "the passphrase does not unlock any key slot" passphrase=wrong
    refused "$BATS_FILE_TMPDIR/luks2" \
        "the passphrase does not unlock any keyslot" passphrase=wrong
}

@test "luks errors: both LUKS2 headers damaged" {
    cp "$BATS_FILE_TMPDIR/luks2" vol
    $LUKS_PATCH vol damage both
    refused vol "both LUKS2 headers are damaged (primary: checksum mismatch; secondary: checksum mismatch)"
}

@test "luks errors: not a LUKS volume" {
    truncate -s 1M vol
    refused vol "not a LUKS volume"
}

@test "luks errors: truncated key area (LUKS1 and LUKS2)" {
    cp "$BATS_FILE_TMPDIR/luks1" v1
    truncate -s 65536 v1
    refused v1 "key slot 0: key material (256000 bytes at header offset 4096) lies beyond the end"
    cp "$BATS_FILE_TMPDIR/luks2" v2
    truncate -s 100000 v2
    refused v2 "keyslot 0: key material (256000 bytes at offset 32768) lies beyond the end"
}

@test "luks errors: unknown cipher (LUKS1 and LUKS2)" {
    cp "$BATS_FILE_TMPDIR/luks1" v1
    $LUKS_PATCH v1 luks1-cipher twofish
    refused v1 'cipher "twofish-xts-plain64" with a 512-bit key is not supported'
    cp "$BATS_FILE_TMPDIR/luks2" v2
    $LUKS_PATCH v2 json twofish
    refused v2 'cipher "twofish-xts-plain64" with a 512-bit key is not supported'
}

@test "luks errors: LUKS2 integrity, requirements, reencryption" {
    cp "$BATS_FILE_TMPDIR/luks2" v1
    $LUKS_PATCH v1 json integrity
    refused v1 'LUKS2 integrity protection ("hmac(sha256)") is not supported'
    cp "$BATS_FILE_TMPDIR/luks2" v2
    $LUKS_PATCH v2 json requirement
    refused v2 'LUKS2 requirement "future-feature" is not supported'
    # A reencryption started (and left unfinished) by cryptsetup itself.
    { cat "$BATS_FILE_TMPDIR/plain"; head -c 8M /dev/zero; } > v3
    cryptsetup reencrypt --encrypt --init-only --type luks2 \
        --reduce-device-size 8M --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "$BATS_FILE_TMPDIR/key" -q v3
    refused v3 "LUKS2 reencryption is in progress"
}

@test "luks errors: a token the filter cannot use is named" {
    cp "$BATS_FILE_TMPDIR/luks2" vol
    echo '{"type":"acme-hsm","keyslots":["0"]}' > token.json
    cryptsetup token import --token-id 0 --json-file token.json vol
    refused vol 'token(s), e.g. "acme-hsm"' passphrase=wrong
}

@test "luks errors: missing passphrase parameter" {
    assert_startup_refused --partial "the passphrase parameter is required" \
        --filter="$LUKS_FILTER" file "$BATS_FILE_TMPDIR/luks1"
}

# (nbdkit -v itself prints every parameter as given, so a literal
# passphrase= would show; the file and descriptor forms keep it out.)
@test "luks: nothing secret in the log with -v" {
    local secret=Sup3r-S3cret-Passphrase
    cp "$BATS_FILE_TMPDIR/luks2" vol
    echo -n $secret > key2
    cryptsetup luksAddKey -q --key-file "$BATS_FILE_TMPDIR/key" \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 vol key2
    start_luks vol passphrase=+key2 -v
    nbdinfo --size "$uri" >/dev/null
    grep -q "unlocked with keyslot 1" "$nbdkit_log"
    volume_key vol key2 vk
    vk_hex=$(od -An -tx1 vk | tr -d ' \n')
    run grep -c "$secret" "$nbdkit_log"
    assert_output 0
    tr -d ' \n' < "$nbdkit_log" > log.joined
    test -s log.joined
    run grep -ci "$vk_hex" log.joined
    assert_output 0
}

@test "luks errors: detached headers (LUKS1 and LUKS2) are refused" {
    truncate -s 4M data
    cryptsetup luksFormat --type luks2 --header h2 --key-file \
        "$BATS_FILE_TMPDIR/key" -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 data
    refused h2 "LUKS2 data segment at offset 0 overlaps the headers"
    cryptsetup luksFormat --type luks1 --header h1 --key-file \
        "$BATS_FILE_TMPDIR/key" -q --pbkdf-force-iterations 1000 data
    refused h1 "LUKS1 payload offset is 0"
}
