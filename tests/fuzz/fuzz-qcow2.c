/* libFuzzer target for the qcow2 engine and the LUKS code: see
 * harness.c and luks-harness.c for what one input does.  build.sh
 * builds it four times: fuzz-qcow2-read (FUZZ_MODE FUZZ_READ),
 * fuzz-qcow2-write (FUZZ_WRITE), fuzz-qcow2-luks (FUZZ_ENCRYPTED) and,
 * with FUZZ_LUKS_VOLUMES defined, fuzz-luks (LUKS1 and LUKS2 volumes).
 * FUZZ_VERBOSE=1 in the environment prints the libraries' error
 * messages, 2 their debug messages too.
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"

#ifndef FUZZ_MODE
#define FUZZ_MODE FUZZ_READ
#endif

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *v = getenv ("FUZZ_VERBOSE");

  fuzz_qcow2_verbose (v ? atoi (v) : 0);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* Images under 72 bytes are refused at once; a cap keeps each input's
   * file small (seeds are a few hundred KiB, LUKS ones up to 1 MiB).
   */
  if (size > 4 * 1024 * 1024)
    return -1;
#ifdef FUZZ_LUKS_VOLUMES
  fuzz_luks_one (data, size);
#else
  fuzz_qcow2_one (data, size, FUZZ_MODE);
#endif
  return 0;
}
