/* Caps on the key derivation a LUKS header asks for (struct
 * luks_kdf_limits in luks.h), checked before anything is derived.
 */
#ifndef LUKS_KDF_LIMITS_H
#define LUKS_KDF_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "kdf.h"
#include "luks.h"

/* The caps with every 0 replaced by its default. */
extern void luks_kdf_limits_resolve (const struct luks_kdf_limits *in,
                                     struct luks_kdf_limits *out);

/* The most PBKDF2 iterations the caps allow for hash with out_len bytes
 * of output.
 */
extern uint64_t luks_kdf_pbkdf2_cap (const struct luks_kdf_limits *lim,
                                     const struct luks_hash *hash,
                                     size_t out_len);

/* One derivation against the caps.  volume and what name it in the
 * message ("disk.qcow2", "LUKS1 key slot 3").  On success *share is its cost
 * as a fraction of the cap (1 = a derivation at the cap), for
 * luks_kdf_check_total.
 */
extern int luks_kdf_check_pbkdf2 (const struct luks_kdf_limits *lim,
                                  const char *volume, const char *what,
                                  const struct luks_hash *hash,
                                  size_t out_len, uint32_t iterations,
                                  double *share);
extern int luks_kdf_check_argon2 (const struct luks_kdf_limits *lim,
                                  const char *volume, const char *what,
                                  const char *type,
                                  uint32_t time, uint32_t memory_kib,
                                  uint32_t cpus, double *share);

/* All the slots a passphrase would be tried on (n of them, costing total
 * shares): at most LUKS_KDF_TOTAL_SLOTS at the caps.
 */
extern int luks_kdf_check_total (const char *volume, const char *version,
                                 unsigned n, double total);

#endif /* LUKS_KDF_LIMITS_H */
