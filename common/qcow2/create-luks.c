/* Creating an image, step 4: encryption, QEMU's qcow2_set_up_encryption,
 * which runs after the truncate (and preallocation).  For LUKS it gives
 * the LUKS1 header and its key material whole clusters of their own
 * (zero-filled), named by the "Full disk encryption header pointer"
 * extension with the header's exact length.  QEMU's defaults are the
 * LUKS library's: aes-xts-plain64 with a 512-bit key, sha256.
 */
#include <config.h>

#include <stdint.h>
#include <string.h>

#include "create.h"
#include "luks.h"
#include "rounding.h"

static void
luks_params (const struct qcow2_create_options *o,
             struct luks_format_params *p)
{
  memset (p, 0, sizeof *p);
  p->iter_time_ms = o->encrypt_iter_time;
}

int
layout_alloc_luks_area (struct layout *l, const struct qcow2_create_options *o)
{
  struct luks_format_params p;
  uint64_t length, clusters, first;

  luks_params (o, &p);
  if (luks_format_length (&p, &length) == -1)
    return -1;
  clusters = DIV_ROUND_UP (length, l->cluster_size);
  if (layout_alloc_clusters (l, clusters, &first) == -1)
    return -1;
  l->crypto_offset = first << l->cluster_bits;
  l->crypto_length = length;
  layout_written (l, l->crypto_offset, clusters << l->cluster_bits);
  return 0;
}

int
create_write_luks_header (struct io *io, const struct qcow2_create_options *o,
                          const struct layout *l)
{
  struct luks_format_params p;
  struct luks_volume *v;

  luks_params (o, &p);
  v = luks_format (io, l->crypto_offset, &p, o->passphrase,
                   strlen (o->passphrase));
  if (v == NULL)
    return -1;
  luks_close (v);
  return 0;
}
