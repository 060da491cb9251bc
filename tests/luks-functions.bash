# Helpers for the tests/test-luks-*.bats files.   -*- shell-script -*-
# Load after functions.sh:
#
#   load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
#   load luks-functions
#
# Volumes are made by the reference tools (qemu-img, cryptsetup) with
# cheap key derivation where the tool allows it, so the tests stay fast.

LUKS_TOOL=$abs_top_builddir/common/luks/luks-tool
LUKS_XTS="/usr/bin/python3 $TESTS_SRCDIR/luks-xts.py"
LUKS_PATCH="/usr/bin/python3 $TESTS_SRCDIR/luks-patch.py"

# The size of the known plaintext put into the cryptsetup volumes.
LUKS_PLAIN_SIZE=$((4 * 1024 * 1024))

# make_plain FILE [SIZE]: deterministic-looking random plaintext.
make_plain ()
{
    head -c "${2:-$LUKS_PLAIN_SIZE}" /dev/urandom > "$1"
}

# make_cryptsetup_luks2 OUT PLAIN KEYFILE [CRYPTSETUP-OPTIONS...]: a
# LUKS2 volume encrypting PLAIN, made offline by cryptsetup.  The file
# gets 8 MiB of room: 4 MiB for the header, and the payload runs from
# 4 MiB to the end, so it starts with PLAIN.
make_cryptsetup_luks2 ()
{
    local out=$1 plain=$2 key=$3
    shift 3
    { cat "$plain"; head -c 8M /dev/zero; } > "$out"
    cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 8M \
        --key-file "$key" -q "$@" "$out"
}

# make_cryptsetup_luks1 OUT PLAIN KEYFILE [CRYPTSETUP-OPTIONS...]: the
# same converted to LUKS1 (cryptsetup encrypts offline only as LUKS2).
make_cryptsetup_luks1 ()
{
    make_cryptsetup_luks2 "$@" --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    cryptsetup convert --type luks1 -q "$1"
}

# Key derivations cheap enough for volumes a test patches.
LUKS_PBKDF2_CHEAP=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
LUKS_ARGON2_CHEAP=(--pbkdf argon2id --pbkdf-force-iterations 4
                   --pbkdf-memory 32 --pbkdf-parallel 1)

# make_cheap_volumes PASS PBKDF2-NAME ARGON2-NAME: for setup_file, in
# the current directory: key (holding PASS), 1 MiB of plain, and
# cryptsetup volumes of it, luks1 and two LUKS2 ones (pbkdf2, argon2id)
# named as given.  Nothing without cryptsetup: the tests then skip.
make_cheap_volumes ()
{
    command -v cryptsetup >/dev/null || return 0
    echo -n "$1" > key
    make_plain plain $((1024 * 1024))
    make_cryptsetup_luks1 luks1 plain key
    make_cryptsetup_luks2 "$2" plain key "${LUKS_PBKDF2_CHEAP[@]}"
    make_cryptsetup_luks2 "$3" plain key "${LUKS_ARGON2_CHEAP[@]}"
}

# luks_filter_setup: setup for tests of the luks filter over cryptsetup
# volumes, each in its own directory.
luks_filter_setup ()
{
    requires cryptsetup nbdinfo
    requires_module "$LUKS_FILTER"
    cd "$BATS_TEST_TMPDIR"
}

# make_qemu_luks OUT SIZE PASS: raw LUKS1 by qemu-img.  Its PBKDF
# timing sometimes fails ("Unable to get accurate CPU usage"): retry.
make_qemu_luks ()
{
    local i
    for i in 1 2 3 4 5; do
        rm -f "$1"
        qemu-img create -q -f luks --object "secret,id=sec0,data=$3" \
            -o key-secret=sec0,iter-time=500 "$1" "$2" && return 0
    done
    return 1
}

# qemu_luks_opts FILE PASS: --image-opts arguments for qemu tools.
qemu_luks_secret ()
{
    echo "secret,id=sec0,data=$1"
}
qemu_luks_image ()
{
    echo "driver=luks,key-secret=sec0,file.filename=$1"
}

# luks_payload FILE PASS: "OFFSET LENGTH SECTOR" of the payload, as our
# library sees it (used only to cut the payload for the oracles).
luks_payload ()
{
    "$LUKS_TOOL" info "$1" "$2" |
        awk '/payload_offset/ { o = $2 } /payload_length/ { l = $2 }
             /sector_size/ { s = $2 } END { print o, l, s }'
}

# volume_key FILE KEYFILE OUT: the volume key, dumped by cryptsetup.
volume_key ()
{
    cryptsetup luksDump --dump-volume-key --volume-key-file "$3" \
        --key-file "$2" -q "$1" >/dev/null
}

# cut_bytes FILE OFFSET LENGTH OUT
cut_bytes ()
{
    /usr/bin/python3 -c '
import sys
f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
open(sys.argv[4], "wb").write(f.read(int(sys.argv[3])))' "$@"
}

# start_luks FILE ARGS...: serve FILE through nbdkit's file plugin and
# our luks filter.
start_luks ()
{
    local file=$1
    shift
    start_nbdkit --filter="$LUKS_FILTER" file "$file" "$@"
}

# nbd_script URI PYTHON: run python with an nbd handle h connected.
nbd_script ()
{
    /usr/bin/python3 - "$1" <<PYEOF
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
$2
h.shutdown()
PYEOF
}

# unaligned_writes URI MODEL: writes and zeroes at odd offsets through
# the server, mirrored into the MODEL file (the expected plaintext).
unaligned_writes ()
{
    /usr/bin/python3 - "$1" "$2" <<'PYEOF'
import nbd, random, sys
h = nbd.NBD()
# The export advertises a minimum block size; send unaligned requests
# anyway, as a client that ignores it would.
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri(sys.argv[1])
model = bytearray(open(sys.argv[2], "rb").read())
size = h.get_size()
rng = random.Random(7)
ops = [(1, 100), (511, 2), (4095, 4098), (65536 + 17, 70000),
       (size - 300, 300), (12345, 1), (3 * 4096 - 1, 8194)]
for i, (off, n) in enumerate(ops):
    if i % 3 == 2:
        h.zero(n, off)
        model[off:off + n] = bytes(n)
    else:
        data = bytes(rng.getrandbits(8) for _ in range(n))
        h.pwrite(data, off)
        model[off:off + n] = data
# Many small overlapping-sector writes in flight at once (the RMW lock).
for k in range(64):
    off = 200000 + k * 100
    data = bytes([k + 1]) * 100
    h.aio_pwrite(data, off)
    model[off:off + 100] = data
while h.aio_in_flight() > 0:
    h.poll(-1)
h.flush()
assert h.pread(size, 0) == bytes(model), "read-back differs"
open(sys.argv[2], "wb").write(model)
h.shutdown()
PYEOF
}

# now_ms: the time in milliseconds.
now_ms ()
{
    echo $(($(date +%s%N) / 1000000))
}

# refused_at_once VOLUME MESSAGE [FILTER-ARGS...]: through the luks
# filter (passphrase $PASS, default "pass") a connection fails within
# 5 s, the log holds MESSAGE exactly once, and the server is still
# alive (teardown checks that it exits cleanly).
refused_at_once ()
{
    local vol=$1 msg=$2 t0 t1
    shift 2
    start_luks "$vol" passphrase="${PASS:-pass}" "$@"
    t0=$(now_ms)
    # Without the caps the derivation would take hours.
    run timeout 20 nbdinfo --size "$uri"
    t1=$(now_ms)
    cat "$nbdkit_log"
    assert_failure
    if test $((t1 - t0)) -ge 5000; then
        fail "refused after $((t1 - t0)) ms"
    fi
    assert_equal "$(grep -cF -- "$msg" "$nbdkit_log")" 1
    server_alive "$nbdkit_pid"
}

# opens VOLUME [FILTER-ARGS...]: the payload is served.
opens ()
{
    local vol=$1
    shift
    start_luks "$vol" passphrase="${PASS:-pass}" "$@"
    run nbdinfo --size "$uri"
    cat "$nbdkit_log"
    assert_success
}
