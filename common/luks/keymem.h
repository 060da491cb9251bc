/* Memory for secrets: passphrases, derived keys, volume keys.
 *
 * Locked into RAM where the system allows it (so it is never swapped),
 * excluded from core dumps, and wiped before it is given back.
 */
#ifndef LUKS_KEYMEM_H
#define LUKS_KEYMEM_H

#include <stddef.h>

/* Zeroed memory of len bytes, or NULL with errno set (and a message). */
extern void *keymem_alloc (size_t len);

/* Wipe and free; NULL is allowed. */
extern void keymem_free (void *p);

/* A copy of len bytes in key memory. */
extern void *keymem_dup (const void *src, size_t len);

#endif /* LUKS_KEYMEM_H */
