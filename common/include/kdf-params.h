/* The kdf-max-* parameters, the same in the luks filter and the qcow2
 * plugin: they raise (or lower) the caps on the key derivation a LUKS
 * header may ask for (struct luks_kdf_limits in common/luks/luks.h).
 *
 * nbdkit glue: include after <nbdkit-plugin.h> or <nbdkit-filter.h>.
 */
#ifndef KDF_PARAMS_H
#define KDF_PARAMS_H

#include <stdint.h>
#include <string.h>

#include "luks.h"

#define kdf_params_help \
  "kdf-max-iterations=<N> Cap on PBKDF2 iterations (default 100000000).\n" \
  "kdf-max-time=<N>       Cap on argon2 passes over 1 GiB (default 32).\n" \
  "kdf-max-memory=<SIZE>  Cap on argon2 memory (default 1G).\n" \
  "kdf-max-parallel=<N>   Cap on argon2 threads (default 8)."

static inline int
kdf_param_number (const char *key, const char *value, uint64_t *out)
{
  if (nbdkit_parse_uint64_t (key, value, out) == -1)
    return -1;
  if (*out == 0) {
    nbdkit_error ("%s must be at least 1", key);
    return -1;
  }
  return 0;
}

/* 1 if key is one of the parameters (stored in *lim), 0 if it is not
 * one of them, -1 on a bad value (reported).
 */
static inline int
kdf_params_config (struct luks_kdf_limits *lim, const char *key,
                   const char *value)
{
  int r;

  if (strcmp (key, "kdf-max-iterations") == 0)
    r = kdf_param_number (key, value, &lim->max_iterations);
  else if (strcmp (key, "kdf-max-time") == 0)
    r = kdf_param_number (key, value, &lim->max_time);
  else if (strcmp (key, "kdf-max-parallel") == 0)
    r = kdf_param_number (key, value, &lim->max_parallel);
  else if (strcmp (key, "kdf-max-memory") == 0) {
    int64_t size = nbdkit_parse_size (value);

    if (size == -1)
      return -1;
    /* argon2's least memory is 8 KiB. */
    if (size < 8192) {
      nbdkit_error ("kdf-max-memory must be at least 8K");
      return -1;
    }
    lim->max_memory = size;
    r = 0;
  }
  else
    return 0;
  return r == -1 ? -1 : 1;
}

#endif /* KDF_PARAMS_H */
