/* The LUKS anti-forensic information splitter (LUKS1 spec section 2.4,
 * used unchanged by LUKS2 "af" type "luks1").
 */
#ifndef LUKS_AF_H
#define LUKS_AF_H

#include <stddef.h>
#include <stdint.h>

#include "kdf.h"

/* Merge stripes * key_len bytes of split material into the key. */
extern int luks_af_merge (const struct luks_hash *hash,
                          const uint8_t *split, size_t key_len,
                          uint32_t stripes, uint8_t *key);

/* Split the key into stripes * key_len bytes (random stripes). */
extern int luks_af_split (const struct luks_hash *hash,
                          const uint8_t *key, size_t key_len,
                          uint32_t stripes, uint8_t *split);

#endif /* LUKS_AF_H */
