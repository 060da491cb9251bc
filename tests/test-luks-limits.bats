#!/usr/bin/env bats
# The format limits the luks filter's manual lists under LIMITS: LUKS2
# header size, key slot ids, key sizes, anti-forensic stripes, salt and
# digest lengths, argon2's format maxima (whatever the kdf-max-*
# parameters say) and sector sizes.  Each header, made by cryptsetup and
# patched just over one limit, is refused at once with one message
# naming the field, and the server survives.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

PASS=limits-pass

setup_file ()
{
    cd "$BATS_FILE_TMPDIR"
    make_cheap_volumes "$PASS" luks2 argon2
}

setup ()
{
    luks_filter_setup
}

# patched BASE OUT PATCH-ARGS...: a copy of a volume of setup_file,
# patched.
patched ()
{
    cp "$BATS_FILE_TMPDIR/$1" "$2"
    $LUKS_PATCH "$2" "${@:3}"
}

@test "luks limits: LUKS2 header size beyond 4 MiB" {
    patched luks2 vol luks2-hdr-size 8388608
    refused_at_once vol "both LUKS2 headers are damaged (primary: invalid header size 8388608; secondary: invalid header size 8388608)"
}

@test "luks limits: LUKS2 keyslot ids 0 to 31" {
    patched luks2 vol json-move keyslots.0 32
    refused_at_once vol 'LUKS2 metadata: bad keyslot "32"'
}

@test "luks limits: keys of at most 64 bytes" {
    patched luks2 vol json-int keyslots.0.key_size 65
    refused_at_once vol 'LUKS2 metadata: keyslot: "key_size" = 65 is out of range'
    patched luks2 vol2 json-int keyslots.0.area.key_size 65
    refused_at_once vol2 'LUKS2 metadata: area: "key_size" = 65 is out of range'
}

@test "luks limits: 4000 anti-forensic stripes (LUKS1 and LUKS2)" {
    patched luks1 vol luks1-stripes 0 3999
    refused_at_once vol "LUKS1 key slot 0 is damaged (3999 anti-forensic stripes, expected 4000)"
    patched luks2 vol2 json-int keyslots.0.af.stripes 4001
    refused_at_once vol2 'LUKS2 metadata: af: "stripes" = 4001 is out of range'
}

@test "luks limits: salts of at most 128 bytes, digests of at most 64" {
    local b129 b65
    b129=$(head -c 129 /dev/zero | base64 -w0)
    b65=$(head -c 65 /dev/zero | base64 -w0)
    patched luks2 vol json-set keyslots.0.kdf.salt "\"$b129\""
    refused_at_once vol 'LUKS2 metadata: kdf: "salt" has a bad length (129 bytes)'
    patched luks2 vol2 json-set digests.0.salt "\"$b129\""
    refused_at_once vol2 'LUKS2 metadata: digest: "salt" has a bad length (129 bytes)'
    patched luks2 vol3 json-set digests.0.digest "\"$b65\""
    refused_at_once vol3 'LUKS2 metadata: digest: "digest" has a bad length (65 bytes)'
}

@test "luks limits: argon2 memory 8 KiB to 4 GiB and 1 to 16 threads, whatever kdf-max-* says" {
    patched argon2 vol json-int keyslots.0.kdf.memory 4194305
    refused_at_once vol 'LUKS2 metadata: kdf: "memory" = 4194305 is out of range' \
        kdf-max-memory=8G
    patched argon2 vol2 json-int keyslots.0.kdf.memory 7
    refused_at_once vol2 'LUKS2 metadata: kdf: "memory" = 7 is out of range'
    patched argon2 vol3 json-int keyslots.0.kdf.cpus 17
    refused_at_once vol3 'LUKS2 metadata: kdf: "cpus" = 17 is out of range' \
        kdf-max-parallel=32
}

@test "luks limits: LUKS2 sectors of 512 to 4096 bytes, a power of two" {
    patched luks2 vol json-int segments.0.sector_size 8192
    refused_at_once vol 'LUKS2 metadata: segment: "sector_size" = 8192 is out of range'
    patched luks2 vol2 json-int segments.0.sector_size 1536
    refused_at_once vol2 'LUKS2 metadata: segment: sector_size 1536 is not a power of 2'
}
