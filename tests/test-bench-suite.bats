#!/usr/bin/env bats
# bench/suite.sh --self-check: every row of issue 10's table runs at
# tiny sizes (one round, 1 s fio runs) and prints a figure, or says it
# was not run because its script is absent or does not measure it.
# Not a benchmark: the figures are not judged, only that each is there.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

suite=$abs_top_srcdir/bench/suite.sh

# self_check [ARGS...]: run the suite at tiny sizes in the test's dir.
self_check ()
{
    BUILDDIR=${BUILDDIR:-$abs_top_builddir} run "$suite" --self-check \
        --workdir="$BATS_TEST_TMPDIR/data" --logdir="$BATS_TEST_TMPDIR/logs" "$@"
}

@test "bench suite: --self-check prints a figure for every row it runs" {
    requires fio nbdcopy qemu-nbd qemu-img
    fio --enghelp 2>/dev/null | grep -qw nbd || skip "this fio has no nbd engine"
    requires_module "$QCOW2_PLUGIN"
    skip_if_sanitizers "timing runs"
    self_check
    assert_success
    local key script goal fio workload row numbers=0
    while IFS='|' read -r key script goal fio workload; do
        row=$(grep -E "^$key " <<<"$output") || fail "no table line for $key"
        if [[ $row == *"not run ("* ]]; then
            # Only a row whose script is absent or lacks it is not run,
            # or one its script skipped, saying why (a QEMU that hung).
            case "$row" in
            *"no bench/$script"*|*"bench/$script does not measure it"*) ;;
            *"skipped by bench/$script: "?*) ;;
            *) fail "$key not run: $row" ;;
            esac
            continue
        fi
        # row workload... OURS QEMU RATIOx LO-HI GOAL yes|no
        [[ $row =~ \ ([0-9.]+)\ +([0-9.]+)\ +([0-9.]+)x\ +([0-9.]+)-([0-9.]+)\ +[0-9.]+\ +(yes|no)$ ]] ||
            fail "$key printed no figure: $row"
        numbers=$((numbers + 1))
    done < <(sed -n "/^rows_table='/,/'$/p" "$suite" | sed "s/^rows_table='//; s/'$//")
    # This tree's own read rows always run.
    for key in plain-read luks-read randread-alloc; do
        grep -qE "^$key .*(yes|no)$" <<<"$output" || fail "$key has no figure"
    done
    [ "$numbers" -ge 3 ]
}

@test "bench suite: a row script that fails is reported and fails --self-check" {
    requires nbdcopy qemu-nbd qemu-img
    BUILDDIR=$BATS_TEST_TMPDIR/nothing-built self_check --rows=plain-read,luks-read
    assert_failure
    assert_output --regexp "plain-read .* failed \(exit 1, see [^ ]*read-bench.log\)"
    assert_output --regexp "luks-read .* failed \(exit 1"
}

@test "bench suite: an unknown row is refused" {
    run "$suite" --rows=no-such-row
    assert_failure 2
    assert_output --partial "no row no-such-row"
}
