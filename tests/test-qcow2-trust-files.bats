#!/usr/bin/env bats
# The files an image names (its backing file and external data file)
# are hostile input: under backing=none the image opens no file the
# operator did not name; in every mode only a regular file or a block
# device is opened, at once (never a blocking open of a FIFO); under
# nbdkit -r nothing is opened for writing.  The images are made by
# qemu-img, the names changed with qemu-img amend / rebase -u.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdcopy
    T=$BATS_TEST_TMPDIR
}

# open_modes PID FILE: the access mode (0 read-only, 1 write-only,
# 2 read-write, from /proc/PID/fdinfo) of each descriptor PID holds
# on FILE, one a line, sorted and unique; "none" if it holds none.
open_modes ()
{
    local pid=$1 real fd flags out=""
    real=$(readlink -f "$2")
    for fd in /proc/"$pid"/fd/*; do
        if [ "$(readlink "$fd")" = "$real" ]; then
            flags=$(awk '$1 == "flags:" { print $2 }' "/proc/$pid/fdinfo/${fd##*/}")
            out+="$((8#$flags & 3))"$'\n'
        fi
    done
    if [ -z "$out" ]; then echo none; else printf %s "$out" | sort -u; fi
}

# An image whose guest data is in d.raw (pattern 0x5a over the first
# 64K), then renamed by amend to NAME.
image_naming ()
{
    qemu-img create -q -f qcow2 -o data_file="$T/d.raw" "$T/img.qcow2" 1M
    qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' "$T/img.qcow2" >/dev/null
    qemu-img amend -q -o data_file="$1" "$T/img.qcow2"
}

# refused_at_once PATTERN ARGS...: refused at start-up, well before
# run_nbdkit_startup's 60 s timeout.
refused_at_once ()
{
    assert_startup_refused_within 20000 "$@"
}

# Another file for the image to name: SUM is its checksum.
make_victim ()
{
    qemu-img create -q -f raw "$T/victim.raw" 1M
    qemu-io -f raw -c 'write -P 0x33 0 1M' "$T/victim.raw" >/dev/null
    victim_sum=$(md5sum < "$T/victim.raw")
}

@test "trust: backing=none refuses a data file the image names: absolute, under /etc, relative" {
    make_victim
    for name in "$T/victim.raw" /etc/passwd victim.raw; do
        image_naming "$name"
        refused_at_once "img.qcow2: the image names $name as its external data file \(header extension \"External data file name\"\).*give data-file=PATH" \
            "$QCOW2_PLUGIN" file="$T/img.qcow2" backing=none
    done
    # Served writable (as before the fix), a client's writes would land
    # in the victim: it is untouched, and nothing holds it open.
    image_naming "$T/victim.raw"
    run run_nbdkit_startup "$QCOW2_PLUGIN" file="$T/img.qcow2" backing=none \
        --run 'qemu-io -f raw -c "write -P 0xee 0 64k" "$uri"'
    assert_failure
    assert_equal "$(md5sum < "$T/victim.raw")" "$victim_sum"
}

@test "trust: backing=none with data-file= serves and writes the operator's data file only" {
    make_victim
    image_naming "$T/victim.raw"
    cp "$T/d.raw" "$T/d.orig"
    start_nbdkit "$QCOW2_PLUGIN" file="$T/img.qcow2" backing=none data-file="$T/d.raw"
    run qemu-io -f raw -c 'read -P 0x5a 0 64k' -c 'write -P 0xa5 64k 64k' "$uri"
    assert_success
    refute_output --partial 'Pattern verification failed'
    assert_equal "$(open_modes "$nbdkit_pid" "$T/victim.raw")" none
    stop_server "$nbdkit_pid"
    _servers=()
    assert_equal "$(md5sum < "$T/victim.raw")" "$victim_sum"
    # QEMU reads both writes from d.raw.
    qemu-img amend -q -o data_file="$T/d.raw" "$T/img.qcow2"
    run qemu-io -f qcow2 -c 'read -P 0x5a 0 64k' -c 'read -P 0xa5 64k 64k' "$T/img.qcow2"
    assert_success
    refute_output --partial 'Pattern verification failed'
}

@test "trust: the default mode follows the data file and the backing file the image names" {
    image_naming "$T/d.raw"
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/img.qcow2"
    nbdcopy "$uri" "$T/got.raw"
    qemu-img convert -O raw "$T/img.qcow2" "$T/want.raw"
    cmp "$T/got.raw" "$T/want.raw"

    qemu-img create -q -f qcow2 "$T/base.qcow2" 1M
    qemu-io -f qcow2 -c 'write -P 0x77 128k 64k' "$T/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2"
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/top.qcow2"
    nbdcopy "$uri" "$T/got2.raw"
    qemu-img convert -O raw "$T/top.qcow2" "$T/want2.raw"
    cmp "$T/got2.raw" "$T/want2.raw"
    run cmp -s "$T/got2.raw" /dev/zero -n 1M
    assert_failure
}

# forget_backing_format IMG: the backing format extension gets an
# unknown type, which readers ignore: the format is then probed.
forget_backing_format ()
{
    /usr/bin/python3 - "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100); off, = struct.unpack(">I", f.read(4))
    while True:
        f.seek(off); magic, length = struct.unpack(">II", f.read(8))
        assert magic != 0, "no backing format extension"
        if magic == 0xE2792ACA:
            f.seek(off); f.write(struct.pack(">I", 0x7E57AB1E)); break
        off += 8 + (length + 7) // 8 * 8
EOF
    run qemu-img info -U "$1"
    refute_output --partial 'backing file format'
}

# make_special KIND PATH: a file of a type that must never be opened.
make_special ()
{
    case $1 in
        fifo) mkfifo "$2" ;;
        socket) /usr/bin/python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$2" ;;
        dir) mkdir "$2" ;;
    esac
}

type_name ()
{
    case $1 in
        fifo) echo "a FIFO" ;;
        socket) echo "a socket" ;;
        dir) echo "a directory" ;;
        chardev) echo "a character device" ;;
    esac
}

special_path ()
{
    if [ "$1" = chardev ]; then echo /dev/null; else echo "$T/special-$1"; fi
}

@test "trust: a FIFO, socket, directory or character device as backing file is refused at once" {
    qemu-img create -q -f qcow2 "$T/top.qcow2" 1M
    for kind in fifo socket dir chardev; do
        path=$(special_path $kind)
        make_special $kind "$path"
        for fmt in raw qcow2 none; do
            if [ $fmt = none ]; then
                qemu-img rebase -q -u -b "$path" -F raw "$T/top.qcow2"
                forget_backing_format "$T/top.qcow2"
            else
                qemu-img rebase -q -u -b "$path" -F $fmt "$T/top.qcow2"
            fi
            refused_at_once "top.qcow2: backing file $path is $(type_name $kind); only a regular file or a block device" \
                "$QCOW2_PLUGIN" file="$T/top.qcow2"
        done
    done
}

@test "trust: a FIFO, socket, directory or character device as data file is refused at once" {
    for kind in fifo socket dir chardev; do
        path=$(special_path $kind)
        image_naming "$path"
        make_special $kind "$path"
        msg="img.qcow2: external data file $path is $(type_name $kind); only a regular file or a block device"
        refused_at_once "$msg" "$QCOW2_PLUGIN" file="$T/img.qcow2"
        refused_at_once "$msg" -r "$QCOW2_PLUGIN" file="$T/img.qcow2"
        # Named by the operator: the same.
        refused_at_once "$msg" "$QCOW2_PLUGIN" file="$T/img.qcow2" \
            backing=none data-file="$path"
    done
}

@test "trust: a FIFO, socket or character device as the image is refused at once" {
    for kind in fifo socket chardev; do
        path=$(special_path $kind)
        make_special $kind "$path"
        refused_at_once "open: $path: is $(type_name $kind); only a regular file or a block device" \
            "$QCOW2_PLUGIN" file="$path"
    done
}

@test "trust: nbdkit -r opens every file read-only; without -r only the image and its data file are written" {
    qemu-img create -q -f qcow2 "$T/base.qcow2" 1M
    qemu-img create -q -f qcow2 -o data_file="$T/d.raw" -b "$T/base.qcow2" -F qcow2 \
        "$T/top.qcow2"

    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/top.qcow2"
    nbdcopy "$uri" null:
    for f in top.qcow2 d.raw base.qcow2; do
        assert_equal "$f: $(open_modes "$nbdkit_pid" "$T/$f")" "$f: 0"
    done

    # The oracle can tell: a writable server holds the image and its
    # data file read-write once a client has connected.
    start_nbdkit "$QCOW2_PLUGIN" file="$T/top.qcow2"
    assert_equal "$(open_modes "$nbdkit_pid" "$T/top.qcow2")" 0
    run qemu-io -f raw -c 'write -P 0x11 0 4k' "$uri"
    assert_success
    assert_equal "$(open_modes "$nbdkit_pid" "$T/top.qcow2")" 2
    assert_equal "$(open_modes "$nbdkit_pid" "$T/d.raw")" 2
    assert_equal "$(open_modes "$nbdkit_pid" "$T/base.qcow2")" 0
}

@test "trust: create=true refuses a FIFO or directory as backing file at once" {
    for kind in fifo dir; do
        path=$(special_path $kind)
        make_special $kind "$path"
        refused_at_once "create: backing file '$path' is $(type_name $kind); only a regular file or a block device" \
            "$QCOW2_PLUGIN" file="$T/new.qcow2" create=true \
            backing-file="$path" backing-format=raw
        [ ! -e "$T/new.qcow2" ]
    done
}

@test "trust: an image on a read-only file system is served read-only, without an error" {
    mkdir "$T/src" "$T/ro"
    qemu-img create -q -f qcow2 "$T/src/a.qcow2" 1M
    if ! mount --bind "$T/src" "$T/ro" 2>/dev/null; then
        skip "cannot bind-mount here"
    fi
    mount -o remount,ro,bind "$T/ro" || { umount "$T/ro"; skip "cannot remount read-only"; }
    start_nbdkit "$QCOW2_PLUGIN" file="$T/ro/a.qcow2" || { umount "$T/ro"; false; }
    # The first client opens the image for writing: it must not fail.
    run qemu-io -r -f raw -c 'read 0 4k' "$uri"
    first_status=$status
    run nbdinfo --json "$uri"
    run_status=$status json=$output
    run qemu-io -f raw -c 'write -P 1 0 4k' "$uri"
    write_status=$status
    modes=$(open_modes "$nbdkit_pid" "$T/ro/a.qcow2")
    stop_server "$nbdkit_pid"
    umount "$T/ro"
    assert_equal "$first_status" 0
    assert_equal "$run_status" 0
    [[ $json == *'"is_read_only": true'* ]] || fail "not read-only: $json"
    assert_equal "$write_status" 1
    assert_equal "$modes" 0
    run cat "$nbdkit_log"
    refute_output --partial 'error'
}

@test "trust: an image replaced after start-up is not opened for writing" {
    qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
    qemu-img create -q -f qcow2 "$T/b.qcow2" 1M
    start_nbdkit "$QCOW2_PLUGIN" file="$T/a.qcow2"
    mv "$T/b.qcow2" "$T/a.qcow2"
    run qemu-io -f raw -c 'write -P 1 0 4k' "$uri"
    assert_failure
    run cat "$nbdkit_log"
    assert_output --partial 'a.qcow2: the file was replaced by another since it was opened'
    assert_equal "$(open_modes "$nbdkit_pid" "$T/a.qcow2")" none
}
