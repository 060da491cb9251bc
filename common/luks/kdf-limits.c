/* Caps on the key derivation a LUKS header asks for.
 *
 * The iteration counts and argon2 costs are the header's to choose, so
 * a crafted header could make one unlock take hours (every LUKS1 slot
 * at 0xFFFFFFFF iterations of sha256 is 4 h of CPU).  The caps are
 * checked for every slot and digest before anything is derived.
 *
 * Defaults, from measurements on the AMD EPYC (SHA extensions, 2 cores)
 * the project is tested on, Debian 12, 2026:
 *
 *   PBKDF2-SHA-256 with a 64-byte key (the default of both tools):
 *   3.5 M iterations/s through gnutls.  Written by the tools:
 *     qemu-img create -f luks (iter-time 2000 ms)     7.8 M (+ 2.0 M digest)
 *     cryptsetup 2.6.1 luksFormat, LUKS1 and LUKS2     3.2 M (+ 0.2 M digest)
 *     cryptsetup luksFormat --iter-time 10000         22.9 M
 *     qemu-img create -f luks -o iter-time=10000     41.0 M (+ 10 M digest)
 *   A machine 10 times faster would write 78 M (qemu-img) or 32 M
 *   (cryptsetup) with the default times.  The cap, 100 M, admits all of
 *   these (and cryptsetup's 10 s volumes from this machine 4 times
 *   over), and costs at most 28 s here per derivation.
 *
 *   argon2id, one thread: 0.91 GiB-passes/s (1.6 with two).  Written by
 *   cryptsetup (two threads here):
 *     luksFormat                      4 passes over 316 MiB = 1.2 GiB-passes
 *     luksFormat --iter-time 10000    6 passes over 1 GiB   = 6 GiB-passes
 *     luksFormat --pbkdf-memory 65536 25 passes over 64 MiB = 1.6 GiB-passes
 *   10 times faster would be 12 GiB-passes with the default time.  The
 *   cap, 32 passes over 1 GiB, admits them, at most 35 s here.
 *   Memory: cryptsetup never picks more than 1 GiB by itself (its
 *   format maximum, 4 GiB, is enforced when parsing), and that is what
 *   the server must be able to afford once at start-up.  Threads:
 *   cryptsetup picks at most 4; the cap allows 8 of the format's 16.
 *
 * Every slot a passphrase is tried on costs a derivation and a digest,
 * and a wrong passphrase is tried on all of them (8 LUKS1 slots, up to
 * 32 LUKS2 keyslots), so the sum is capped too: LUKS_KDF_TOTAL_SLOTS
 * derivations at the caps, about 2 minutes here.  Eight slots made
 * here with the default 2 s each count 0.3 (cryptsetup) or 0.7
 * (qemu-img: 7.8 M / 100 M + 2.0 M / 200 M per slot).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "checked-overflow.h"
#include "diag.h"
#include "kdf-limits.h"

/* PBKDF2 cost of the reference, SHA-256 with a 64-byte key: two
 * blocks of cost 16 (kdf.c).
 */
#define PBKDF2_REF_COST 32
#define GIB_IN_KIB (UINT64_C (1) << 20)

static uint64_t
or_default (uint64_t v, uint64_t def)
{
  return v ? v : def;
}

void
luks_kdf_limits_resolve (const struct luks_kdf_limits *in,
                         struct luks_kdf_limits *out)
{
  out->max_iterations = or_default (in->max_iterations,
                                    LUKS_KDF_DEFAULT_MAX_ITERATIONS);
  out->max_time = or_default (in->max_time, LUKS_KDF_DEFAULT_MAX_TIME);
  out->max_memory = or_default (in->max_memory, LUKS_KDF_DEFAULT_MAX_MEMORY);
  out->max_parallel = or_default (in->max_parallel,
                                  LUKS_KDF_DEFAULT_MAX_PARALLEL);
}

/* cap * num / den, saturating. */
static uint64_t
scale (uint64_t cap, uint64_t num, uint64_t den)
{
  uint64_t p;

  if (MUL_OVERFLOW (cap, num, &p))
    return UINT64_MAX;
  return p / den;
}

/* PBKDF2 runs all its iterations once per hash-sized output block. */
static uint64_t
pbkdf2_cost (const struct luks_hash *hash, size_t out_len)
{
  return (out_len + hash->len - 1) / hash->len * hash->cost;
}

uint64_t
luks_kdf_pbkdf2_cap (const struct luks_kdf_limits *lim,
                     const struct luks_hash *hash, size_t out_len)
{
  return scale (lim->max_iterations, PBKDF2_REF_COST,
                pbkdf2_cost (hash, out_len));
}

int
luks_kdf_check_pbkdf2 (const struct luks_kdf_limits *lim,
                       const char *volume, const char *what,
                       const struct luks_hash *hash, size_t out_len,
                       uint32_t iterations, double *share)
{
  uint64_t cap = luks_kdf_pbkdf2_cap (lim, hash, out_len);

  if (iterations > cap) {
    if (pbkdf2_cost (hash, out_len) == PBKDF2_REF_COST)
      diag_error ("%s: %s: pbkdf2 iterations %" PRIu32 " exceed the cap "
                  "%" PRIu64 " (kdf-max-iterations=)", volume, what,
                  iterations, cap);
    else
      diag_error ("%s: %s: pbkdf2 iterations %" PRIu32 " exceed the cap "
                  "%" PRIu64 " for %s with %zu bytes of output "
                  "(kdf-max-iterations=%" PRIu64 " is for sha256 with 64 bytes)",
                  volume, what, iterations, cap, hash->name, out_len,
                  lim->max_iterations);
    errno = EINVAL;
    return -1;
  }
  *share = cap ? (double) iterations / cap : 0;
  return 0;
}

int
luks_kdf_check_argon2 (const struct luks_kdf_limits *lim,
                       const char *volume, const char *what, const char *type,
                       uint32_t time, uint32_t memory_kib, uint32_t cpus,
                       double *share)
{
  /* The parser admits at least 8 KiB; 0 would mean no memory cost. */
  uint64_t time_cap = memory_kib ? scale (lim->max_time, GIB_IN_KIB,
                                          memory_kib) : lim->max_time;

  if (memory_kib > lim->max_memory / 1024) {
    diag_error ("%s: %s: %s memory %" PRIu32 " KiB exceeds the cap "
                "%" PRIu64 " KiB (kdf-max-memory=)", volume, what, type,
                memory_kib,
                lim->max_memory / 1024);
    errno = EINVAL;
    return -1;
  }
  if (cpus > lim->max_parallel) {
    diag_error ("%s: %s: %s cpus %" PRIu32 " exceed the cap %" PRIu64
                " (kdf-max-parallel=)", volume, what, type, cpus,
                lim->max_parallel);
    errno = EINVAL;
    return -1;
  }
  if (time > time_cap) {
    if (memory_kib == GIB_IN_KIB)
      diag_error ("%s: %s: %s time %" PRIu32 " exceeds the cap %" PRIu64
                  " (kdf-max-time=)", volume, what, type, time, time_cap);
    else
      diag_error ("%s: %s: %s time %" PRIu32 " exceeds the cap %" PRIu64
                  " for %" PRIu32 " KiB of memory (kdf-max-time=%" PRIu64
                  " counts passes over 1 GiB)", volume, what, type, time,
                  time_cap, memory_kib, lim->max_time);
    errno = EINVAL;
    return -1;
  }
  *share = time_cap ? (double) time / time_cap : 0;
  return 0;
}

int
luks_kdf_check_total (const char *volume, const char *version, unsigned n,
                      double total)
{
  if (total > LUKS_KDF_TOTAL_SLOTS) {
    diag_error ("%s: %s: trying the passphrase on its %u key slots would "
                "cost %.2f derivations at the caps, more than the %d "
                "allowed in all (kdf-max-iterations=, kdf-max-time=)",
                volume, version, n, total, LUKS_KDF_TOTAL_SLOTS);
    errno = EINVAL;
    return -1;
  }
  return 0;
}
