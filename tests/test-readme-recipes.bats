#!/usr/bin/env bats
# The recipes of README.md, extracted and run as written (each block
# follows a `<!-- recipe: NAME -->` line), in a directory holding the
# build tree's modules under the names the README uses, and their
# outcome checked with qemu-img.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdinfo nbdcopy
    requires_module "$QCOW2_PLUGIN"
    cd "$BATS_TEST_TMPDIR"
    ln -s "$QCOW2_PLUGIN" qcow2.so
    ln -s "$QCOW2_FILTER" qcow2-filter.so
    ln -s "$LUKS_FILTER" luks2.so
    ln -s "$COMPRESS_FILTER" compress.so
    # qcow2-tool as the installed tool is called: by name, on PATH.
    mkdir bin
    ln -s "$QCOW2_TOOL" bin/qcow2-tool
    PATH=$PWD/bin:$PATH
    # disk.qcow2: 8 MiB with data at both ends, and its raw view.
    qemu-img create -q -f qcow2 disk.qcow2 8M
    qemu-io -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 7M 1M' disk.qcow2 >/dev/null
    qemu-img convert -O raw disk.qcow2 ref.raw
}

# recipe NAME: the shell code of README.md's recipe NAME.
recipe ()
{
    awk -v name="$1" '
        $0 == "<!-- recipe: " name " -->" { found = 1; next }
        found && /^```sh$/ { inside = 1; next }
        inside && /^```$/ { exit }
        inside { print }' "$abs_top_srcdir/README.md"
}

# run_recipe NAME: run it here, in this shell (so nbdkit is the tests'
# nbdkit), without bats' fd 3 (a daemon holding it would hang bats).
run_recipe ()
{
    local code
    code=$(recipe "$1")
    test -n "$code" || fail "README.md has no recipe $1"
    echo "$code"
    eval "$code" 3>&-
}

@test "README recipe: qcow2 to compressed qcow2 with nbdcopy" {
    requires_module "$COMPRESS_FILTER"
    run_recipe compress
    check_clean small.qcow2
    qemu-img compare -f raw ref.raw -F qcow2 small.qcow2
    run qemu-img check small.qcow2
    assert_output --regexp '[1-9][0-9.]*% compressed clusters'
}

@test "README recipe: qcow2 to raw and back with qemu-img over NBD" {
    run_recipe raw
    cmp disk.raw ref.raw
    check_clean back.qcow2
    qemu-img compare -f raw ref.raw -F qcow2 back.qcow2
}

@test "README recipe: a cloud image behind a copy-on-write overlay" {
    cp disk.qcow2 cloud.qcow2
    local before
    before=$(md5sum < cloud.qcow2)
    run_recipe cow
    assert_equal "$(md5sum < cloud.qcow2)" "$before"
}

@test "README recipe: a LUKS volume inside a qcow2 image" {
    requires_module "$LUKS_FILTER"
    echo -n s3cret > key.txt
    cp ref.raw disk.raw
    # qemu-img's key derivation timing fails now and then on a loaded
    # machine: the recipe's create retries (functions.sh).
    qemu-img () {
        if [ "$1" = create ]; then shift; qemu_img_create "$@"
        else command qemu-img "$@"; fi
    }
    run_recipe luks
    qemu-img convert --object secret,id=k,file=key.txt \
        --image-opts driver=luks,key-secret=k,file.driver=qcow2,file.file.filename=guest.qcow2 \
        -O raw plain.raw
    cmp <(head -c 8M plain.raw) ref.raw
}

@test "README recipe: an internal snapshot" {
    qemu-img snapshot -c before-upgrade disk.qcow2
    qemu-io -c 'write -P 0x77 0 2M' disk.qcow2 >/dev/null
    run_recipe snapshot
    cmp before-upgrade.raw ref.raw
}

@test "README recipe: the qcow2 filter over curl" {
    requires_module "$QCOW2_FILTER"
    requires lighttpd curl
    mkdir www
    cp disk.qcow2 www/cloud.qcow2
    start_http_server "$PWD/www"
    URL=$http_url/cloud.qcow2
    code=$(recipe curl | sed '/^URL=/d')
    echo "$code"
    run eval "$code"
    assert_success
    assert_line --partial "description: qcow2 v3, 64 KiB clusters"
    cmp cloud.raw ref.raw
}

@test "README recipe: a virt-v2v-style output with qemu-img convert -n" {
    qemu-img convert -f qcow2 -O vmdk disk.qcow2 guest.vmdk
    run_recipe v2v
    check_clean out.qcow2
    qemu-img compare -f raw ref.raw -F qcow2 out.qcow2
}

@test "README recipe: check, snapshot, resize and commit with qcow2-tool" {
    test -x "$QCOW2_TOOL" || fail "qcow2-tool was not built: run make first"
    qemu-img create -q -f qcow2 -F qcow2 -b disk.qcow2 overlay.qcow2
    qemu-io -c 'write -P 0x33 4M 1M' overlay.qcow2 >/dev/null
    run_recipe tool
    # The snapshot holds the data at creation (QEMU reads it at the
    # image's new size: its first 8 MiB); the image grew by 1 GiB.
    run qemu-img snapshot -l disk.qcow2
    assert_output --partial before-upgrade
    qemu-img convert -l snapshot.name=before-upgrade -O raw disk.qcow2 snap.raw
    cmp -n 8M snap.raw ref.raw
    run qemu-img info --output=json disk.qcow2
    assert_output --partial '"virtual-size": 1082130432'
    # The overlay's 1 MiB is in disk.qcow2 now; both stay check-clean.
    check_clean disk.qcow2
    check_clean overlay.qcow2
    qemu-io -c 'read -P 0x33 4M 1M' -c 'read -P 0x5a 0 1M' disk.qcow2
}
