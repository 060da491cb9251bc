# Hostile images for the write path.   -*- shell-script -*-
# Load after functions.sh:
#
#   load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
#   load hostile-functions

# make_hostile_images DIR [AFTER-SNAPSHOT-WRITE]: DIR/good, a v3 image
# with 4 KiB clusters, data below and above 2 MiB and an internal
# snapshot, and from it DIR/bad/*.qcow2, the images
# tests/fuzz/craft-seeds.py makes (rc-data-is-l1.qcow2: guest offset 0
# maps onto the L1 table, ...).  AFTER-SNAPSHOT-WRITE: a qemu-io
# command run after the snapshot (default: none).
make_hostile_images ()
{
    local dir=$1
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$dir/good" 4M
    qemu-io -f qcow2 -c "write -P 0x31 0 12k" -c "write -P 0x32 2M 4k" \
        "$dir/good" >/dev/null
    qemu-img snapshot -c one "$dir/good"
    if test -n "${2:-}"; then
        qemu-io -f qcow2 -c "$2" "$dir/good" >/dev/null
    fi
    /usr/bin/python3 "$TESTS_SRCDIR/fuzz/craft-seeds.py" "$dir/good" \
        "$dir/bad" >/dev/null
}
