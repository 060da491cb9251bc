#!/usr/bin/env bats
# Every EXAMPLES entry of the four manuals, run as written with the
# build tree's modules in place of the short names (./qcow2.so for
# qcow2, ./compress.so for compress, ./qcow2-filter.so for the qcow2
# filter), a Unix socket for a TCP port, and its outcome checked
# against qemu-img or cryptsetup.  Keep it in step with the pages:
# plugins/qcow2/nbdkit-qcow2-plugin.pod, filters/*/nbdkit-*-filter.pod.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load luks-functions

setup ()
{
    requires qemu-img qemu-io nbdinfo nbdcopy
    requires_module "$QCOW2_PLUGIN"
    cd "$BATS_TEST_TMPDIR"
}

# A 4 MiB guest disk with data in it, and its raw view.
make_disk ()
{
    qemu-img create -q -f qcow2 disk.qcow2 4M
    qemu-io -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 3M 64k' disk.qcow2 >/dev/null
    qemu-img convert -O raw disk.qcow2 ref.raw
}

# assert_compressed IMAGE: qemu-img check counts compressed clusters.
assert_compressed ()
{
    run qemu-img check "$1"
    assert_success
    assert_output --regexp '[1-9][0-9.]*% compressed clusters'
}

@test "qcow2 plugin manual: serve read-only, nbdinfo; copy out" {
    make_disk
    # nbdkit -r qcow2 disk.qcow2 ; nbdinfo nbd://localhost
    start_nbdkit -r "$QCOW2_PLUGIN" disk.qcow2
    run nbdinfo "$uri"
    assert_success
    assert_line --partial "description: qcow2 v3, 64 KiB clusters"
    assert_line --partial "is_read_only: true"
    # nbdkit -U - -r qcow2 disk.qcow2 --run 'nbdcopy "$uri" disk.raw'
    nbdkit -U - -r "$QCOW2_PLUGIN" disk.qcow2 --run 'nbdcopy "$uri" disk.raw'
    cmp disk.raw ref.raw
}

@test "qcow2 plugin manual: untrusted image with backing=none" {
    qemu-img create -q -f raw base.raw 1M
    qemu-io -f raw -c 'write -P 0x11 0 1M' base.raw >/dev/null
    qemu-img create -q -f qcow2 -b base.raw -F raw untrusted.qcow2
    # nbdkit -r qcow2 untrusted.qcow2 backing=none
    nbdkit -U - -r "$QCOW2_PLUGIN" untrusted.qcow2 backing=none \
        --run 'nbdcopy "$uri" out.raw'
    # The base was not read: the guest sees zeroes.
    cmp out.raw <(head -c 1M /dev/zero)
}

@test "qcow2 plugin manual: an internal snapshot" {
    make_disk
    qemu-img snapshot -c before-upgrade disk.qcow2
    qemu-io -c 'write -P 0x77 0 1M' disk.qcow2 >/dev/null
    # nbdkit qcow2 disk.qcow2 snapshot=before-upgrade
    start_nbdkit "$QCOW2_PLUGIN" disk.qcow2 snapshot=before-upgrade
    copy_export "$uri" snap.raw
    cmp snap.raw ref.raw
    run nbdinfo "$uri"
    assert_line --partial '1 snapshot (exporting 1 "before-upgrade")'
    assert_line --partial "is_read_only: true"
}

@test "qcow2 plugin manual: an encrypted image, passphrase in a file" {
    echo -n s3cret > key.txt
    qemu_img_create -q -f qcow2 --object secret,id=k,file=key.txt \
        -o encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10 secret.qcow2 4M
    qemu-io --object secret,id=k,file=key.txt \
        --image-opts driver=qcow2,file.filename=secret.qcow2,encrypt.key-secret=k \
        -c 'write -P 0x3c 64k 128k' >/dev/null
    qemu-img convert --object secret,id=k,file=key.txt \
        --image-opts driver=qcow2,file.filename=secret.qcow2,encrypt.key-secret=k \
        -O raw ref.raw
    # nbdkit qcow2 secret.qcow2 passphrase=+key.txt
    start_nbdkit "$QCOW2_PLUGIN" secret.qcow2 passphrase=+key.txt
    copy_export "$uri" out.raw
    cmp out.raw ref.raw
}

@test "qcow2 plugin manual: create an image and fill it" {
    make_disk
    # The example's 1 GiB, from a 4 MiB raw file.
    nbdkit -U - "$QCOW2_PLUGIN" new.qcow2 create=true size=1G \
        --run 'nbdcopy ref.raw "$uri"'
    check_clean new.qcow2
    run qemu-img info new.qcow2
    assert_line "virtual size: 1 GiB (1073741824 bytes)"
    # The rest of the larger image must read as zeroes.
    qemu-img compare -f raw ref.raw -F qcow2 new.qcow2
}

@test "qcow2 plugin manual: watch the L2 cache" {
    make_disk
    # nbdkit -f -v -D qcow2.cache=1 qcow2 disk.qcow2
    start_nbdkit -v -D qcow2.cache=1 "$QCOW2_PLUGIN" disk.qcow2
    copy_export "$uri" out.raw
    grep -q "disk.qcow2: L2 cache miss: table at 0x" "$nbdkit_log"
}

@test "qcow2 filter manual: the examples over local files" {
    requires_module "$QCOW2_FILTER"
    make_disk
    # nbdkit --filter=qcow2 file disk.qcow2
    nbdkit -U - -r --filter="$QCOW2_FILTER" file disk.qcow2 \
        --run 'nbdcopy "$uri" out.raw'
    cmp out.raw ref.raw
    # nbdkit --filter=qcow2 file /dev/sdb create=true size=20G (on a
    # fixed-size file in place of the device)
    truncate -s 8M dev.img
    nbdkit -U - --filter="$QCOW2_FILTER" file dev.img create=true size=20M \
        --run 'nbdcopy ref.raw "$uri"'
    check_clean dev.img
    # nbdkit --filter=compress --filter=qcow2 file out.qcow2
    requires_module "$COMPRESS_FILTER"
    qemu-img create -q -f qcow2 out.qcow2 4M
    truncate -s 8M out.qcow2
    nbdkit -U - --filter="$COMPRESS_FILTER" --filter="$QCOW2_FILTER" \
        file out.qcow2 --run 'nbdcopy ref.raw "$uri"'
    check_clean out.qcow2
    qemu-img compare -f raw ref.raw -F qcow2 out.qcow2
    assert_compressed out.qcow2
}

@test "qcow2 filter manual: over curl, read-only" {
    requires_module "$QCOW2_FILTER"
    requires lighttpd curl
    make_disk
    # nbdkit -r --filter=qcow2 curl https://example.com/cloud.qcow2
    start_http_server "$PWD"
    nbdkit -U - -r --filter="$QCOW2_FILTER" curl "$http_url/disk.qcow2" \
        --run 'nbdcopy "$uri" out.raw'
    cmp out.raw ref.raw
}

@test "luks filter manual: serve, copy out, inside qcow2, key slot 1" {
    requires cryptsetup
    requires_module "$LUKS_FILTER"
    echo -n s3cret > key.txt
    make_plain plain $((1024 * 1024))
    make_cryptsetup_luks2 volume.luks plain key.txt \
        "${LUKS_PBKDF2_CHEAP[@]}" --key-slot 1
    # nbdkit --filter=./luks2.so file volume.luks passphrase=+key.txt
    start_nbdkit --filter="$LUKS_FILTER" file volume.luks passphrase=+key.txt
    copy_export "$uri" out.raw
    cmp <(head -c 1M out.raw) plain
    # nbdkit -U - -r --filter=./luks2.so file volume.luks passphrase=+key.txt
    #        --run 'nbdcopy "$uri" plain.raw'
    nbdkit -U - -r --filter="$LUKS_FILTER" file volume.luks \
        passphrase=+key.txt --run 'nbdcopy "$uri" plain.raw'
    cmp <(head -c 1M plain.raw) plain
    # nbdkit --filter=./luks2.so ./qcow2.so guest.qcow2 passphrase=+key.txt
    qemu-img convert -f raw -O qcow2 volume.luks guest.qcow2
    nbdkit -U - -r --filter="$LUKS_FILTER" "$QCOW2_PLUGIN" guest.qcow2 \
        passphrase=+key.txt --run 'nbdcopy "$uri" guest.raw'
    cmp <(head -c 1M guest.raw) plain
    # ... key-slot=1 kdf-max-iterations=1000000
    nbdkit -U - -r --filter="$LUKS_FILTER" file volume.luks \
        passphrase=+key.txt key-slot=1 kdf-max-iterations=1000000 \
        --run 'nbdcopy "$uri" slot1.raw'
    cmp <(head -c 1M slot1.raw) plain
}

@test "compress filter manual: nbdcopy and qemu-img convert -n" {
    requires_module "$COMPRESS_FILTER"
    make_disk
    # qemu-img create -f qcow2 -o compression_type=zstd out.qcow2 20G
    # nbdkit -U - --filter=compress qcow2 out.qcow2
    #        --run 'nbdcopy --requests=64 --flush disk.raw "$uri"'
    qemu-img create -q -f qcow2 -o compression_type=zstd out.qcow2 4M
    nbdkit -U - --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" out.qcow2 \
        --run 'nbdcopy --requests=64 --flush ref.raw "$uri"'
    check_clean out.qcow2
    qemu-img compare -f raw ref.raw -F qcow2 out.qcow2
    assert_compressed out.qcow2
    # qemu-img create -f qcow2 out.qcow2 20G
    # nbdkit -U - --filter=compress qcow2 out.qcow2
    #        --run 'qemu-img convert -n -f vmdk disk.vmdk -O raw "$uri"'
    qemu-img convert -f qcow2 -O vmdk disk.qcow2 disk.vmdk
    qemu-img create -q -f qcow2 out2.qcow2 4M
    nbdkit -U - --filter="$COMPRESS_FILTER" "$QCOW2_PLUGIN" out2.qcow2 \
        --run 'qemu-img convert -n -f vmdk disk.vmdk -O raw "$uri"'
    check_clean out2.qcow2
    qemu-img compare -f raw ref.raw -F qcow2 out2.qcow2
}
