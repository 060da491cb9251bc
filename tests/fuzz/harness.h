/* One fuzzing input through the qcow2 engine (harness.c) or the LUKS
 * code (luks-harness.c), shared by the libFuzzer targets (fuzz-qcow2.c,
 * built by build.sh with clang) and the regression replayer (replay.c,
 * built by automake for `make check`).  Both link kdf-cap.c, which
 * bounds every key derivation.
 */
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "luks.h"

enum fuzz_mode {
  FUZZ_READ,                    /* open read-only, read + block status */
  FUZZ_WRITE,                   /* open read-write, write/zero/trim, reopen */
  FUZZ_ENCRYPTED,               /* both, with the passphrase for LUKS too */
  FUZZ_TOOL,                    /* info, map, check, repair, snapshot and
                                   resize edits, as qcow2-tool */
};

/* Run one input.  Errors from the engine are expected (the input is
 * hostile) and ignored; anything wrong that the harness can see itself
 * (extents that do not tile the range, "zero" extents that read as
 * non-zero) aborts.  Returns 0, or -1 if the input file could not even
 * be set up (a harness problem, not a finding).
 */
extern int fuzz_qcow2_one (const uint8_t *data, size_t size,
                           enum fuzz_mode mode);

/* Print engine errors (1), and debug messages too (2), to stderr
 * (default 0: silent).
 */
extern void fuzz_qcow2_verbose (int on);

/* Run one LUKS1 or LUKS2 volume: open it with the passphrase "fuzz",
 * check the payload round trip (luks-harness.c).  Messages go where
 * fuzz_qcow2_verbose sent them.  Returns 0, or -1 on a harness problem.
 */
extern int fuzz_luks_one (const uint8_t *data, size_t size);

/* The low key derivation caps both harnesses open volumes with
 * (kdf-cap.c).
 */
extern void fuzz_kdf_limits (struct luks_kdf_limits *lim);

#endif /* FUZZ_HARNESS_H */
