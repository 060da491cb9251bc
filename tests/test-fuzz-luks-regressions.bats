#!/usr/bin/env bats
# The LUKS fuzzers' findings and corpora, kept (tests/fuzz/README.md):
# every file of tests/fuzz/regressions/luks and corpus/luks goes
# through the LUKS harness (open with the passphrase "fuzz", payload
# round trip), every file of regressions/qcow2-luks and
# corpus/qcow2-luks through the qcow2 engine with the image's LUKS
# header unlocked, both built by automake with the normal compiler
# (and with the sanitizers in that build), key derivation bounded by
# kdf-cap.c.  Nothing may crash, abort or leak.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

# A directory without findings yet is not in git (it would be empty).
replay_corpus () {              # replay_corpus TARGET DIR...
    local target=$1 dir n=0 dirs=()
    shift
    replay=$abs_top_builddir/tests/fuzz-replay
    [ -x "$replay" ] || skip "fuzz-replay is not built (make check builds it)"
    for dir in "$@"; do
        if [ -d "$dir" ]; then
            dirs+=("$dir")
            n=$(( n + $(ls "$dir" | wc -l) ))
        fi
    done
    [ "$n" -gt 0 ] || fail "no inputs in $*"
    run "$replay" -t "$target" "${dirs[@]}"
    assert_success
    assert_output --partial "$n inputs replayed, no crash"
    refute_output --regexp 'Sanitizer|runtime error'
}

@test "fuzz regressions: LUKS1 and LUKS2 volumes replay without a crash" {
    replay_corpus luks "$abs_top_srcdir/tests/fuzz/regressions/luks" \
        "$abs_top_srcdir/tests/fuzz/corpus/luks"
}

@test "fuzz regressions: LUKS-encrypted qcow2 images replay without a crash" {
    replay_corpus qcow2-luks "$abs_top_srcdir/tests/fuzz/regressions/qcow2-luks" \
        "$abs_top_srcdir/tests/fuzz/corpus/qcow2-luks"
}

# The replayer unlocks for real: a cryptsetup volume with the fuzzers'
# passphrase opens, and one whose key slot costs more than the
# harness's caps (kdf-cap.c: the library's caps set low, and a bound on
# each derivation itself) is refused before any derivation, so a
# hostile corpus file cannot stall make check.
@test "fuzz replay: a cryptsetup volume unlocks, a costly one is refused" {
    requires cryptsetup
    local T=$BATS_TEST_TMPDIR
    replay=$abs_top_builddir/tests/fuzz-replay
    [ -x "$replay" ] || skip "fuzz-replay is not built (make check builds it)"
    printf fuzz > "$T/pass"
    truncate -s 2M "$T/cheap" "$T/dear"
    cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --cipher aes-xts-plain64 --key-size 256 \
        -d "$T/pass" "$T/cheap"
    cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 100000 \
        --cipher aes-xts-plain64 --key-size 256 -d "$T/pass" "$T/dear"

    run "$replay" -vv -t luks "$T/cheap"
    assert_success
    assert_output --partial "LUKS2 keyslot 0 unlocked"
    run "$replay" -vv -t luks "$T/dear"
    assert_success
    assert_output --regexp \
        "iterations 100000 exceed the cap|PBKDF2 with 100000 iterations refused"
    refute_output --partial "unlocked"
}
