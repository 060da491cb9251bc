#!/usr/bin/env bats
# Caps on the key derivation a LUKS header asks for (issue 9 section 2),
# through the luks filter and the qcow2 plugin:
#  - headers made by cryptsetup and qemu-img, patched over a cap (PBKDF2
#    iterations of a LUKS1 key slot and of its master key digest, of a
#    LUKS2 pbkdf2 keyslot and of its digest; argon2 time, memory and
#    threads), are refused at once, with one message naming the slot
#    or digest and the field, and the server survives and exits cleanly;
#  - the caps bound every slot, not just the one that would unlock, and
#    all the slots tried together;
#  - volumes made by cryptsetup and qemu-img with their defaults open;
#  - each kdf-max-* parameter moves its cap (a cap just below the
#    volume's figure refuses it, at the figure admits it);
#  - a failed unlock is remembered: later connections fail at once,
#    without deriving again.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

PASS=kdf-caps-pass
SECRET="secret,id=sec0,data=$PASS"

setup_file ()
{
    cd "$BATS_FILE_TMPDIR"
    make_cheap_volumes "$PASS" luks2-pbkdf2 luks2-argon2
}

setup ()
{
    luks_filter_setup
}

@test "kdf caps: LUKS1 key slot iterations over the cap are refused at once" {
    cp "$BATS_FILE_TMPDIR/luks1" vol
    $LUKS_PATCH vol luks1-iter 0 4294967295
    refused_at_once vol "LUKS1 key slot 0: pbkdf2 iterations 4294967295 exceed the cap 100000000 (kdf-max-iterations=)"
}

@test "kdf caps: every LUKS1 slot is checked, not only the one that unlocks" {
    cp "$BATS_FILE_TMPDIR/luks1" vol
    cryptsetup luksAddKey -q --key-file "$BATS_FILE_TMPDIR/key" \
        --pbkdf-force-iterations 1000 --key-slot 5 vol "$BATS_FILE_TMPDIR/key"
    $LUKS_PATCH vol luks1-iter 5 4294967295
    refused_at_once vol "LUKS1 key slot 5: pbkdf2 iterations 4294967295 exceed the cap 100000000 (kdf-max-iterations=)"
}

@test "kdf caps: LUKS1 master key digest iterations over the cap are refused at once" {
    cp "$BATS_FILE_TMPDIR/luks1" vol
    $LUKS_PATCH vol luks1-iter mk 4294967295
    refused_at_once vol "LUKS1 master key digest: pbkdf2 iterations 4294967295 exceed the cap 200000000 for sha256 with 20 bytes of output (kdf-max-iterations=100000000 is for sha256 with 64 bytes)"
}

@test "kdf caps: a slow hash gets a proportionally lower cap" {
    make_cryptsetup_luks1 vol "$BATS_FILE_TMPDIR/plain" \
        "$BATS_FILE_TMPDIR/key" --hash sha512
    $LUKS_PATCH vol luks1-iter 0 $((100000000 * 32 / 56 + 1))
    refused_at_once vol "LUKS1 key slot 0: pbkdf2 iterations 57142858 exceed the cap 57142857 for sha512 with 64 bytes of output"
}

@test "kdf caps: LUKS2 pbkdf2 keyslot and digest iterations over the cap are refused at once" {
    cp "$BATS_FILE_TMPDIR/luks2-pbkdf2" vol
    $LUKS_PATCH vol json-int keyslots.0.kdf.iterations 4294967295
    refused_at_once vol "LUKS2 keyslot 0: pbkdf2 iterations 4294967295 exceed the cap 100000000 (kdf-max-iterations=)"

    cp "$BATS_FILE_TMPDIR/luks2-pbkdf2" vol2
    $LUKS_PATCH vol2 json-int digests.0.iterations 4294967295
    refused_at_once vol2 "LUKS2 volume key digest: pbkdf2 iterations 4294967295 exceed the cap 200000000 for sha256 with 32 bytes of output (kdf-max-iterations=100000000 is for sha256 with 64 bytes)"
}

@test "kdf caps: argon2 time, memory and threads over the caps are refused at once" {
    cp "$BATS_FILE_TMPDIR/luks2-argon2" vol
    $LUKS_PATCH vol json-int keyslots.0.kdf.memory 1048576
    $LUKS_PATCH vol json-int keyslots.0.kdf.time 33
    refused_at_once vol "LUKS2 keyslot 0: argon2id time 33 exceeds the cap 32 (kdf-max-time=)"

    cp "$BATS_FILE_TMPDIR/luks2-argon2" vol2
    $LUKS_PATCH vol2 json-int keyslots.0.kdf.time 4294967295
    refused_at_once vol2 "LUKS2 keyslot 0: argon2id time 4294967295 exceeds the cap 1048576 for 32 KiB of memory (kdf-max-time=32 counts passes over 1 GiB)"

    cp "$BATS_FILE_TMPDIR/luks2-argon2" vol3
    $LUKS_PATCH vol3 json-int keyslots.0.kdf.memory 4194304
    refused_at_once vol3 "LUKS2 keyslot 0: argon2id memory 4194304 KiB exceeds the cap 1048576 KiB (kdf-max-memory=)"

    cp "$BATS_FILE_TMPDIR/luks2-argon2" vol4
    $LUKS_PATCH vol4 json-int keyslots.0.kdf.cpus 16
    refused_at_once vol4 "LUKS2 keyslot 0: argon2id cpus 16 exceed the cap 8 (kdf-max-parallel=)"
}

@test "kdf caps: kdf-max-iterations moves the PBKDF2 caps (LUKS1 and LUKS2)" {
    refused_at_once "$BATS_FILE_TMPDIR/luks1" \
        "LUKS1 key slot 0: pbkdf2 iterations 1000 exceed the cap 999 (kdf-max-iterations=)" \
        kdf-max-iterations=999
    opens "$BATS_FILE_TMPDIR/luks1" kdf-max-iterations=1000
    refused_at_once "$BATS_FILE_TMPDIR/luks2-pbkdf2" \
        "LUKS2 keyslot 0: pbkdf2 iterations 1000 exceed the cap 999 (kdf-max-iterations=)" \
        kdf-max-iterations=999
    opens "$BATS_FILE_TMPDIR/luks2-pbkdf2" kdf-max-iterations=1000
}

@test "kdf caps: kdf-max-memory, kdf-max-parallel and kdf-max-time move the argon2 caps" {
    refused_at_once "$BATS_FILE_TMPDIR/luks2-argon2" \
        "argon2id memory 32 KiB exceeds the cap 31 KiB (kdf-max-memory=)" \
        kdf-max-memory=31K
    opens "$BATS_FILE_TMPDIR/luks2-argon2" kdf-max-memory=32K

    truncate -s 32M vol
    cryptsetup luksFormat -q --type luks2 --pbkdf argon2i \
        --pbkdf-force-iterations 5 --pbkdf-memory 262144 --pbkdf-parallel 2 \
        --key-file "$BATS_FILE_TMPDIR/key" vol
    refused_at_once vol "argon2i cpus 2 exceed the cap 1 (kdf-max-parallel=)" \
        kdf-max-parallel=1
    # 5 passes over 256 MiB: a cap of 1 pass over 1 GiB allows 4.
    refused_at_once vol "argon2i time 5 exceeds the cap 4 for 262144 KiB of memory (kdf-max-time=1 counts passes over 1 GiB)" \
        kdf-max-time=1
    opens vol kdf-max-time=2 kdf-max-parallel=2
}

@test "kdf caps: all the slots tried together are capped; key-slot= tries one" {
    local i
    cp "$BATS_FILE_TMPDIR/luks1" vol
    for i in 1 2; do
        cryptsetup luksAddKey -q --key-file "$BATS_FILE_TMPDIR/key" \
            --pbkdf-force-iterations 1000 vol "$BATS_FILE_TMPDIR/key"
    done
    assert_equal "$($LUKS_PATCH vol luks1-iter mk)" 1000
    # Each slot costs its 1000 iterations (the whole cap) and the digest
    # (half a cap: 20 bytes of output), 4.5 caps for three slots.
    refused_at_once vol "LUKS1: trying the passphrase on its 3 key slots would cost 4.50 derivations at the caps, more than the 4 allowed" \
        kdf-max-iterations=1000
    opens vol kdf-max-iterations=1000 key-slot=0
}

@test "kdf caps: bad kdf-max-* values are refused at start-up" {
    assert_startup_refused "kdf-max-memory must be at least 8K" \
        --filter="$LUKS_FILTER" null passphrase=x kdf-max-memory=4K
    assert_startup_refused "kdf-max-iterations must be at least 1" \
        --filter="$LUKS_FILTER" null passphrase=x kdf-max-iterations=0
    assert_startup_refused "kdf-max-time" \
        --filter="$LUKS_FILTER" null passphrase=x kdf-max-time=many
    assert_startup_refused "kdf-max-parallel must be at least 1" \
        "$QCOW2_PLUGIN" file=/nonexistent kdf-max-parallel=0
}

@test "kdf caps: volumes made by cryptsetup and qemu-img with their defaults open" {
    local p i
    # LUKS2's default header and key areas take 16 MiB.
    head -c 32M /dev/zero > plain32
    for p in "--type luks1" "--type luks2" "--type luks2 --pbkdf pbkdf2"; do
        cp plain32 vol
        # shellcheck disable=SC2086
        cryptsetup luksFormat -q $p --key-file "$BATS_FILE_TMPDIR/key" vol
        cryptsetup luksDump vol | grep -E "Iterations|Time cost|Memory|Threads"
        opens vol
    done
    # qemu-img's PBKDF timing sometimes fails ("Unable to get accurate
    # CPU usage"): retry.
    for i in 1 2 3 4 5; do
        rm -f q.luks
        qemu-img create -q -f luks --object "$SECRET" -o key-secret=sec0 \
            q.luks 16M && break
    done
    cryptsetup luksDump q.luks | grep -i iterations
    opens q.luks
}

@test "kdf caps: a failed unlock is remembered: later connections fail at once" {
    local i t0 t1 t2
    # About two seconds per derivation here.
    make_cryptsetup_luks1 vol "$BATS_FILE_TMPDIR/plain" \
        "$BATS_FILE_TMPDIR/key"
    cryptsetup luksChangeKey -q --key-file "$BATS_FILE_TMPDIR/key" \
        --pbkdf-force-iterations 7000000 vol "$BATS_FILE_TMPDIR/key"
    start_nbdkit -v --filter="$LUKS_FILTER" file vol passphrase=wrong
    t0=$(now_ms)
    run nbdinfo --size "$uri"
    assert_failure
    t1=$(now_ms)
    for i in 1 2 3 4 5; do
        run nbdinfo --size "$uri"
        assert_failure
    done
    t2=$(now_ms)
    cat "$nbdkit_log"
    echo "first connection $((t1 - t0)) ms, 5 later ones $((t2 - t1)) ms"
    assert_equal "$(grep -c "debug: luks: unlocking the volume" "$nbdkit_log")" 1
    assert_equal "$(grep -c "unlock already failed: not deriving again" "$nbdkit_log")" 5
    assert_equal "$(grep -c "the passphrase does not unlock any key slot" "$nbdkit_log")" 1
    assert_equal "$(grep -c "the passphrase does not unlock the volume (when the first client connected): restart nbdkit to try again" "$nbdkit_log")" 5
    if test $((t2 - t1)) -ge $((t1 - t0)); then
        fail "5 later connections took longer than one derivation"
    fi
    server_alive "$nbdkit_pid"
}

@test "kdf caps: a refused header is remembered too" {
    cp "$BATS_FILE_TMPDIR/luks1" vol
    $LUKS_PATCH vol luks1-iter 0 4294967295
    start_nbdkit -v --filter="$LUKS_FILTER" file vol passphrase="$PASS"
    run nbdinfo --size "$uri"
    assert_failure
    run nbdinfo --size "$uri"
    assert_failure
    cat "$nbdkit_log"
    assert_equal "$(grep -c "exceed the cap 100000000" "$nbdkit_log")" 1
    assert_equal "$(grep -c "the volume was refused (when the first client connected)" "$nbdkit_log")" 1
}

@test "kdf caps: an I/O error of the layer below while unlocking is retried" {
    touch errors-on
    start_nbdkit -v --filter="$LUKS_FILTER" --filter=error \
        file "$BATS_FILE_TMPDIR/luks1" passphrase="$PASS" \
        error-pread=EIO error-pread-rate=100% error-file="$PWD/errors-on"
    run nbdinfo --size "$uri"
    assert_failure
    rm errors-on
    run nbdinfo --size "$uri"
    cat "$nbdkit_log"
    assert_success
    assert_equal "$(grep -c "debug: luks: unlocking the volume" "$nbdkit_log")" 2
}

# ---------------------------------------------------------------------
# The qcow2 plugin: LUKS-encrypted qcow2 images by qemu-img.

# make_encrypted_qcow2 OUT [ITER-TIME]
make_encrypted_qcow2 ()
{
    local i
    for i in 1 2 3 4 5; do
        rm -f "$1"
        qemu-img create -q -f qcow2 --object "$SECRET" \
            -o "encrypt.format=luks,encrypt.key-secret=sec0${2:+,encrypt.iter-time=$2}" \
            "$1" 16M && return 0
    done
    return 1
}

# refused_at_startup PATTERN ARGS...: within 5 s.
refused_at_startup ()
{
    assert_startup_refused_within 5000 "$@"
}

@test "kdf caps: qcow2 plugin: key slot and digest iterations over the caps are refused at start-up" {
    requires qemu-img
    requires_module "$QCOW2_PLUGIN"
    make_encrypted_qcow2 enc.qcow2 10
    cp enc.qcow2 slot.qcow2
    $LUKS_PATCH slot.qcow2 luks1-iter 0 4294967295
    refused_at_startup "LUKS1 key slot 0: pbkdf2 iterations 4294967295 exceed the cap 100000000 \(kdf-max-iterations=\)" \
        "$QCOW2_PLUGIN" file=slot.qcow2 passphrase="$PASS"
    cp enc.qcow2 mk.qcow2
    $LUKS_PATCH mk.qcow2 luks1-iter mk 4294967295
    refused_at_startup "LUKS1 master key digest: pbkdf2 iterations 4294967295 exceed the cap 200000000" \
        "$QCOW2_PLUGIN" file=mk.qcow2 passphrase="$PASS"
}

@test "kdf caps: qcow2 plugin: kdf-max-iterations moves the cap; qemu-img's default image opens" {
    requires qemu-img
    requires_module "$QCOW2_PLUGIN"
    local n
    make_encrypted_qcow2 enc.qcow2 10
    n=$($LUKS_PATCH enc.qcow2 luks1-iter 0)
    refused_at_startup "LUKS1 key slot 0: pbkdf2 iterations $n exceed the cap $((n - 1)) \(kdf-max-iterations=\)" \
        "$QCOW2_PLUGIN" file=enc.qcow2 passphrase="$PASS" kdf-max-iterations=$((n - 1))
    start_nbdkit "$QCOW2_PLUGIN" file=enc.qcow2 passphrase="$PASS" \
        kdf-max-iterations="$n"
    run nbdinfo --size "$uri"
    assert_success
    assert_output 16777216

    # qemu-img's default iter-time (2000 ms).
    make_encrypted_qcow2 default.qcow2
    $LUKS_PATCH default.qcow2 luks1-iter 0
    start_nbdkit "$QCOW2_PLUGIN" file=default.qcow2 passphrase="$PASS"
    run nbdinfo --size "$uri"
    assert_success
    assert_output 16777216
}

@test "kdf caps: qcow2 plugin: the caps apply to an encrypted backing file" {
    requires qemu-img
    requires_module "$QCOW2_PLUGIN"
    local n
    make_encrypted_qcow2 base.qcow2 10
    n=$($LUKS_PATCH base.qcow2 luks1-iter 0)
    qemu-img create -q -f qcow2 -u -b base.qcow2 -F qcow2 top.qcow2 16M
    refused_at_startup "LUKS1 key slot 0: pbkdf2 iterations $n exceed the cap $((n - 1)) \(kdf-max-iterations=\)" \
        "$QCOW2_PLUGIN" file=top.qcow2 passphrase="$PASS" kdf-max-iterations=$((n - 1))
    start_nbdkit "$QCOW2_PLUGIN" file=top.qcow2 passphrase="$PASS" \
        kdf-max-iterations="$n"
    run nbdinfo --size "$uri"
    assert_success
    assert_output 16777216
}
