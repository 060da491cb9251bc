/* QEMU's "metadata preallocation" heuristic (block/qcow2-refcount.c,
 * qcow2_detect_metadata_preallocation): an image in which more clusters
 * carry a refcount than the file really stores was preallocated sparse,
 * so its data clusters may be holes.  Only for such images does QEMU ask
 * the file below whether a data cluster is a hole when it reports block
 * status.  We do the same so that our map matches qemu-nbd's.
 */
#include <config.h>

#include <stdlib.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "internal.h"
#include "refcount-format.h"
#include "io.h"
#include "minmax.h"
#include "rounding.h"

/* Count clusters with a nonzero refcount, stopping at limit.  Damaged
 * refcount structures just end the count: this is a heuristic for block
 * status, not a check.
 *
 * As in QEMU only the clusters inside the file are counted.  That also
 * bounds the work by the file's size: a hostile refcount table of a
 * million entries all naming one refcount block would otherwise cost a
 * million cluster reads at every open.
 */
static uint64_t
count_referenced (struct qcow2_image *img, uint64_t limit)
{
  const struct qcow2_header *h = &img->hdr;
  uint64_t reftable_bytes = (uint64_t) h->refcount_table_clusters << img->cluster_bits;
  uint64_t per_block = img->cluster_size * 8 >> h->refcount_order;
  uint64_t nb_clusters = DIV_ROUND_UP (img->file_size, img->cluster_size);
  uint64_t nb_blocks = MIN (reftable_bytes / 8,
                            DIV_ROUND_UP (nb_clusters, per_block));
  unsigned char *table = malloc (reftable_bytes);
  unsigned char *block = malloc (img->cluster_size);
  uint64_t count = 0;

  if (table == NULL || block == NULL ||
      io_pread (img->file, table, nb_blocks * 8, h->refcount_table_offset) == -1)
    goto out;
  for (uint64_t i = 0; i < nb_blocks && count < limit; i++) {
    uint64_t off = load_be64 (table + i * 8) & REFT_OFFSET_MASK;
    uint64_t entries = MIN (per_block, nb_clusters - i * per_block);

    if (off == 0 || !IS_ALIGNED (off, img->cluster_size) ||
        !range_within (off, img->cluster_size, img->file_size) ||
        io_pread (img->file, block, img->cluster_size, off) == -1)
      continue;
    for (uint64_t j = 0; j < entries && count < limit; j++)
      count += refblock_get (block, j, h->refcount_order) != 0;
  }
 out:
  free (table);
  free (block);
  return count;
}

int
detect_metadata_preallocation (struct qcow2_image *img)
{
  int64_t real = io_allocated (img->file);
  uint64_t real_clusters, threshold;

  img->metadata_preallocated = false;
  if (real == -1)
    return 0;
  real_clusters = real / img->cluster_size;
  threshold = MAX (real_clusters * 10 / 9, real_clusters + 2);
  img->metadata_preallocated = count_referenced (img, threshold) >= threshold;
  return 0;
}
