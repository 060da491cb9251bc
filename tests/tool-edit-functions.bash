# qcow2-tool's image edits (snapshot, resize, commit) against qemu-img
# (tests/test-qcow2-tool-{snapshot,resize,commit}.bats).
# -*- shell-script -*-  Load after functions.sh and read-functions.bash.

# setup_tool_edits: every test's setup: skip unless qcow2-tool was
# built (it needs json-c); $img is the image, $t the test's directory.
setup_tool_edits ()
{
    requires qemu-img qemu-io
    test -x "$QCOW2_TOOL" || skip "qcow2-tool was not built"
    img=$BATS_TEST_TMPDIR/test.qcow2
    t=$BATS_TEST_TMPDIR
}

# scenario_image CREATE-OPTIONS CLUSTER: $img with every kind of L2
# entry (write_scenario, read-functions.bash), plus two compressed
# clusters (which QEMU packs into one host cluster).
scenario_image ()
{
    local c=$2 size
    size=$(image_size "$c")
    qemu-img create -q -f qcow2 -o "$1",cluster_size="$c" "$img" "$size"
    write_scenario "$img" "$c" "$size"
    qemu-io -c "write -c -P 0xc1 $((18 * c)) $c" \
            -c "write -c -P 0xc2 $((19 * c)) $c" "$img" >/dev/null
}

# tool_ok ARGS...: `run qcow2-tool ARGS...`, which must succeed.
tool_ok ()
{
    run "$QCOW2_TOOL" "$@"
    assert_success
}

# virtual_size IMAGE: in bytes, as qemu-img reads the header.
virtual_size ()
{
    qemu-img info "$1" | sed -n 's/^virtual size: .*(\([0-9]*\) bytes)$/\1/p'
}

# same_guest A B: both images show the guest the same size and bytes.
# (Not `qemu-img compare -s`: it finds block status mismatches between
# an image and its own copy.)
same_guest ()
{
    assert_equal "$(virtual_size "$1")" "$(virtual_size "$2")"
    run qemu-img compare "$1" "$2"
    assert_success
}

# snapshot_raw IMAGE NAME RAW: the snapshot's guest view, by QEMU.
snapshot_raw ()
{
    rm -f "$3"
    qemu-img convert -l snapshot.name="$2" -O raw "$1" "$3"
}

# LeakSanitizer refuses to run under ptrace and fails the program at
# exit: the traced runs of a sanitizer build do without it.
traced_env=(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")

# writes_of ARGS...: the number of pwrite64 calls `qcow2-tool ARGS...`
# makes (it runs).
writes_of ()
{
    env "${traced_env[@]}" strace -f -e trace=pwrite64 -o "$BATS_TEST_TMPDIR/strace.out" \
        "$QCOW2_TOOL" "$@" >/dev/null 2>&1 || return 1
    grep -c 'pwrite64(' "$BATS_TEST_TMPDIR/strace.out"
}

# killed_at N ARGS...: qcow2-tool ARGS..., killed with SIGKILL when it
# is about to make its Nth pwrite64 (what kill -9 at that moment
# leaves: everything before reached the page cache, nothing after).
killed_at ()
{
    local n=$1; shift
    env "${traced_env[@]}" strace -f -o /dev/null -e trace=pwrite64 \
        -e inject=pwrite64:signal=KILL:when="$n" \
        "$QCOW2_TOOL" "$@" >/dev/null 2>&1 || true
}

# failed_at N ARGS...: qcow2-tool ARGS..., its Nth pwrite64 failing
# with EIO (and not made), which must fail the command with a message.
failed_at ()
{
    local n=$1; shift
    run env "${traced_env[@]}" strace -f -o /dev/null -e trace=pwrite64 \
        -e inject=pwrite64:error=EIO:when="$n" "$QCOW2_TOOL" "$@"
    assert_failure 1
    assert_output --partial "Input/output error"
}

# check_after_crash IMAGE: what `qemu-img check` accepts after a crash:
# exit 0 or 3 (leaks only).  The one exception: the "copied" flags of
# the active tables are rewritten after the refcounts they describe (in
# QEMU too, which has the same window), so a crash between the two may
# leave OFLAG_COPIED mismatches and nothing else, which `qemu-img check
# -r all` repairs; copied_windows counts them.
check_after_crash ()
{
    local status=0 out=$BATS_TEST_TMPDIR/check.out
    qemu-img check "$1" >"$out" 2>&1 || status=$?
    if test "$status" -eq 2 &&
        ! grep -E '^ERROR' "$out" | grep -qv 'OFLAG_COPIED'; then
        copied_windows=$((${copied_windows:-0} + 1))
        status=0
        qemu-img check -r all "$1" >"$out" 2>&1 || status=$?
    fi
    if test "$status" -ne 0 && test "$status" -ne 3; then
        echo "qemu-img check $1: exit $status" >&2
        cat "$out" >&2
        return 1
    fi
}

# power_cut_each ARGS...: run `qcow2-tool ARGS...` on $t/pc.qcow2 (a
# copy of $img; ARGS name it) with io-shim recording its system calls,
# then check what a power cut at many points leaves
# (repair-power-cut.py edit): the guest data before or after, and
# qemu-img check as check_after_crash accepts it.
power_cut_each ()
{
    requires_io_shim
    cp "$img" "$t/pc.qcow2"
    cp "$img" "$t/pc-initial.qcow2"
    rm -rf "$t/journal" "$t/scratch" "$t/pc-old.raw" "$t/pc-new.raw"
    mkdir -p "$t/scratch"
    qemu-img convert -O raw "$img" "$t/pc-old.raw"
    LD_PRELOAD=$(shim_preload) IO_SHIM_FILES=$(realpath "$t/pc.qcow2") \
        IO_SHIM_JOURNAL=$t/journal "$QCOW2_TOOL" "$@" >/dev/null
    qemu-img convert -O raw "$t/pc.qcow2" "$t/pc-new.raw"
    run python3 "$BATS_TEST_DIRNAME/repair-power-cut.py" edit \
        "$t/journal" "$t/pc-initial.qcow2" "$t/pc-old.raw,$t/pc-new.raw" \
        "$t/scratch"
    assert_success
    assert_output --regexp '[0-9]+ cuts, 0 failed'
    echo "# ${output##*$'\n'}" >&3
}
