#!/usr/bin/env bats
# The fuzzers' findings, kept: every file in tests/fuzz/regressions/
# (minimised crashers found by tests/fuzz/run.sh, and a few seeds that
# reach far into the format) goes through the same open / read / block
# status / write / close sequence as in the fuzzers, built by automake
# with the normal compiler (and with the sanitizers in that build).
# Nothing may crash, abort or leak.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

@test "fuzz regressions: every input replays without a crash" {
    replay=$abs_top_builddir/tests/fuzz-replay
    corpus=$abs_top_srcdir/tests/fuzz/regressions
    [ -x "$replay" ] || skip "fuzz-replay is not built (make check builds it)"
    [ "$(ls "$corpus" | wc -l)" -gt 0 ]
    run "$replay" "$corpus"
    echo "exit status $status, output:"; echo "$output"
    [ "$status" -eq 0 ]
    grep -q "inputs replayed, no crash" <<<"$output"
    ! grep -Eq 'Sanitizer|runtime error' <<<"$output"
}
