/* Bounded key derivation for the fuzzers and the replayer.
 *
 * The harnesses give the library low caps (fuzz_kdf_limits), so its own
 * cost checks refuse most dear headers before any derivation, and the
 * refusal paths are fuzzed too.  Those caps are in the library's units
 * (argon2 time counts passes over 1 GiB, so it cannot go below one such
 * pass) and admit more than a fuzzer can afford, so the derivations
 * themselves are bounded here as well.
 *
 * A fuzzer mutating iteration counts would otherwise spend minutes on
 * one input (PBKDF2 counts are 32 bits, argon2 may ask for GiB), and
 * the library's own caps admit what cryptsetup and qemu-img make on a
 * fast machine, far too much per input.  The programs are linked with
 * -Wl,--wrap=luks_pbkdf2 -Wl,--wrap=luks_argon2, so every derivation the
 * LUKS code asks for (key slots and digests, LUKS1 and LUKS2, the qcow2
 * engine's embedded header alike) comes here first: above the caps it
 * fails as the library's own refusals do (diag_error, EINVAL), at or
 * below them it runs the real one.  The caps admit the seeds
 * (make-luks-seeds.sh: cryptsetup at 1000 iterations or argon2 32 KiB x
 * 4, qemu-img at iter-time=1, a few thousand iterations).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "diag.h"
#include "harness.h"
#include "kdf.h"

#define FUZZ_MAX_PBKDF2_ITERATIONS  16384
#define FUZZ_MAX_ARGON2_TIME        8
#define FUZZ_MAX_ARGON2_MEMORY_KIB  1024
#define FUZZ_MAX_ARGON2_THREADS     4

void
fuzz_kdf_limits (struct luks_kdf_limits *lim)
{
  *lim = (struct luks_kdf_limits) {
    .max_iterations = FUZZ_MAX_PBKDF2_ITERATIONS,
    .max_time = 1,
    .max_memory = FUZZ_MAX_ARGON2_MEMORY_KIB * 1024,
    .max_parallel = FUZZ_MAX_ARGON2_THREADS,
  };
}

extern int __real_luks_pbkdf2 (const struct luks_hash *hash,
                               const void *pass, size_t pass_len,
                               const uint8_t *salt, size_t salt_len,
                               uint32_t iterations,
                               uint8_t *out, size_t out_len);
extern int __wrap_luks_pbkdf2 (const struct luks_hash *hash,
                               const void *pass, size_t pass_len,
                               const uint8_t *salt, size_t salt_len,
                               uint32_t iterations,
                               uint8_t *out, size_t out_len);
extern int __real_luks_argon2 (enum luks_argon2_type type,
                               const void *pass, size_t pass_len,
                               const uint8_t *salt, size_t salt_len,
                               uint32_t time, uint32_t memory_kib,
                               uint32_t threads,
                               uint8_t *out, size_t out_len);
extern int __wrap_luks_argon2 (enum luks_argon2_type type,
                               const void *pass, size_t pass_len,
                               const uint8_t *salt, size_t salt_len,
                               uint32_t time, uint32_t memory_kib,
                               uint32_t threads,
                               uint8_t *out, size_t out_len);

int
__wrap_luks_pbkdf2 (const struct luks_hash *hash,
                    const void *pass, size_t pass_len,
                    const uint8_t *salt, size_t salt_len,
                    uint32_t iterations, uint8_t *out, size_t out_len)
{
  if (iterations > FUZZ_MAX_PBKDF2_ITERATIONS) {
    diag_error ("fuzz: PBKDF2 with %" PRIu32 " iterations refused (cap %d)",
                iterations, FUZZ_MAX_PBKDF2_ITERATIONS);
    errno = EINVAL;
    return -1;
  }
  return __real_luks_pbkdf2 (hash, pass, pass_len, salt, salt_len,
                             iterations, out, out_len);
}

int
__wrap_luks_argon2 (enum luks_argon2_type type,
                    const void *pass, size_t pass_len,
                    const uint8_t *salt, size_t salt_len,
                    uint32_t time, uint32_t memory_kib, uint32_t threads,
                    uint8_t *out, size_t out_len)
{
  if (time > FUZZ_MAX_ARGON2_TIME || memory_kib > FUZZ_MAX_ARGON2_MEMORY_KIB ||
      threads > FUZZ_MAX_ARGON2_THREADS) {
    diag_error ("fuzz: argon2 time %" PRIu32 ", memory %" PRIu32 " KiB, %"
                PRIu32 " threads refused (caps %d, %d, %d)",
                time, memory_kib, threads, FUZZ_MAX_ARGON2_TIME,
                FUZZ_MAX_ARGON2_MEMORY_KIB, FUZZ_MAX_ARGON2_THREADS);
    errno = EINVAL;
    return -1;
  }
  return __real_luks_argon2 (type, pass, pass_len, salt, salt_len,
                             time, memory_kib, threads, out, out_len);
}
