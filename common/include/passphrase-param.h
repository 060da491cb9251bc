/* The passphrase parameter, the same in the luks filter and the qcow2
 * plugin: SECRET, -, +FILE or -FD, as nbdkit_read_password takes it,
 * kept in locked key memory (common/luks/keymem.h) until the volume is
 * unlocked.
 *
 * nbdkit glue: include after <nbdkit-plugin.h> or <nbdkit-filter.h>.
 */
#ifndef PASSPHRASE_PARAM_H
#define PASSPHRASE_PARAM_H

#include <stdlib.h>
#include <string.h>

#include "keymem.h"

/* Read the parameter into *passphrase (key memory), replacing and
 * wiping an earlier one; *len (if not NULL) gets its length.  The copy
 * nbdkit made is wiped.  -1 on failure (reported), with *passphrase
 * NULL if the earlier one is gone.
 */
static inline int
passphrase_param (const char *value, char **passphrase, size_t *len)
{
  char *p;
  size_t n;

  if (nbdkit_read_password (value, &p) == -1)
    return -1;
  keymem_free (*passphrase);
  n = strlen (p);
  *passphrase = keymem_dup (p, n + 1);
  explicit_bzero (p, n);
  free (p);
  if (*passphrase == NULL)
    return -1;
  if (len)
    *len = n;
  return 0;
}

#endif /* PASSPHRASE_PARAM_H */
