# Helpers for tests/test-compress-*.bats.   -*- shell-script -*-
# Load it after functions.sh.

MAKE_DISK_IMAGE="/usr/bin/python3 $BATS_TEST_DIRNAME/make-disk-image.py"
COMPRESS_OVERWRITE="/usr/bin/python3 $BATS_TEST_DIRNAME/compress-overwrite.py"

compress_requires ()
{
    requires qemu-img nbdcopy nbdinfo
    requires_module "$COMPRESS_FILTER"
}

# ... and Python's nbd module, for the workload scripts.
compress_requires_python_nbd ()
{
    compress_requires
    test -x /usr/bin/python3 || skip "/usr/bin/python3 is not installed"
    /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
        skip "the python nbd module is not installed"
}

# compress_copy SRC IMG [PLUGIN-ARGS...]: what virt-v2v -oo compressed
# does: nbdcopy SRC into IMG through the compress filter, over our code
# as QCOW2_VIA says (ours_args in functions.sh).
compress_copy ()
{
    local src=$1 img=$2; shift 2
    ours_args "$img" || return 1
    nbdkit -U - --filter="$COMPRESS_FILTER" "${ours_args[@]}" "$@" \
        --run "nbdcopy --requests=64 --flush '$src' \"\$uri\""
}

# check_field IMG FIELD: a number from `qemu-img check --output=json`.
check_field ()
{
    qemu-img check --output=json "$1" |
        /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['$2'])"
}
