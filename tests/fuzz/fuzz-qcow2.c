/* libFuzzer target for the qcow2 engine: see harness.c for what one
 * input does.  build.sh builds it twice: fuzz-qcow2-read (FUZZ_MODE
 * FUZZ_READ) and fuzz-qcow2-write (FUZZ_WRITE).  FUZZ_VERBOSE=1 in the
 * environment prints the engine's error messages.
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
   * memfd small (seeds are a few hundred KiB at most).
   */
  if (size > 4 * 1024 * 1024)
    return -1;
  fuzz_qcow2_one (data, size, FUZZ_MODE);
  return 0;
}
