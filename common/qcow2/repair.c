/* Rebuilding refcounts from the metadata, for an image left dirty by a
 * crash with lazy refcounts ("Header": incompatible bit 0).  Every
 * cluster reachable from the header is counted, the stored refcounts
 * are made equal to the counts, and the dirty bit is cleared.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "byte-order.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

/* A hostile image can make its tables name each other many times over
 * (a million L1 entries naming one L2 table, thousands of snapshots
 * sharing one L1 table), so that walking every path would take hours.
 * The walk is given a budget of table entries: far more than QEMU could
 * itself check in reasonable time, yet a few seconds of work here.
 */
#define MAX_ENTRIES_WALKED (UINT64_C (1) << 31)

struct counts {
  uint32_t *n;
  uint64_t nr;                  /* clusters counted */
  uint64_t max;                 /* the largest count a refcount can hold */
  uint64_t budget;              /* table entries left to walk */
};

/* Take the cost of walking a table of entries from the budget. */
static int
spend (struct qcow2_image *img, struct counts *c, uint64_t entries)
{
  if (entries > c->budget) {
    diag_error ("%s: dirty image: rebuilding its refcounts would walk "
                "more than %" PRIu64 " table entries (tables named over "
                "and over?); refusing (check it with qemu-img check)",
                img->filename, MAX_ENTRIES_WALKED);
    errno = EFBIG;
    return -1;
  }
  c->budget -= entries;
  return 0;
}

/* Count one reference to every cluster of [offset, offset + bytes). */
static int
count_range (struct qcow2_image *img, struct counts *c, uint64_t offset,
             uint64_t bytes)
{
  uint64_t first = offset >> img->cluster_bits;
  uint64_t last = (offset + bytes - 1) >> img->cluster_bits;

  if (bytes == 0)
    return 0;
  if (last >= c->nr)
    return image_corrupt (img, "metadata points at %#" PRIx64 ", beyond the "
                          "end of the file", offset);
  for (uint64_t i = first; i <= last; i++) {
    /* Also keeps the 32-bit counters from wrapping. */
    if (c->n[i] >= c->max)
      return image_corrupt (img, "the cluster at %#" PRIx64 " is referenced "
                            "more times than its refcount can hold",
                            i << img->cluster_bits);
    c->n[i]++;
  }
  return 0;
}

static int
count_l2_table (struct qcow2_image *img, struct counts *c, uint64_t l2_offset)
{
  struct meta_table *t;
  int r = 0;

  if (meta_cache_get (img->l2_cache, img->file, l2_offset, &t) == -1)
    return -1;
  for (uint64_t i = 0; i < l2_entries_per_table (img) && r == 0; i++) {
    struct l2_entry d;

    r = l2_decode (img, t, i, &d);
    if (r == -1)
      break;
    if (d.kind == MAP_COMPRESSED)
      r = count_range (img, c, compressed_host_offset (d.raw, img->cluster_bits),
                       compressed_length (d.raw, img->cluster_bits));
    else if (d.has_host && img->data == img->file)
      r = count_range (img, c, d.host, img->cluster_size);
  }
  meta_cache_put (img->l2_cache, t);
  return r;
}

/* One metadata range (metadata.c), once for each reference to it; an
 * L2 table also counts the clusters its entries use.
 */
static int
count_metadata (struct qcow2_image *img, enum metadata_kind kind,
                uint64_t offset, uint64_t bytes, void *opaque)
{
  struct counts *c = opaque;

  switch (kind) {
  case MD_ACTIVE_L2:
  case MD_INACTIVE_L2:
    if (!IS_ALIGNED (offset, img->cluster_size))
      return image_corrupt (img, "L2 table offset %#" PRIx64 " is not aligned",
                            offset);
    if (count_range (img, c, offset, bytes) == -1 ||
        spend (img, c, l2_entries_per_table (img)) == -1)
      return -1;
    return count_l2_table (img, c, offset);
  case MD_INACTIVE_L1:
    /* Its L2 tables are read next: snapshots share clusters, and each
     * path from an L1 table counts.
     */
    if (spend (img, c, bytes / 8) == -1)
      return -1;
    return count_range (img, c, offset, bytes);
  default:
    return count_range (img, c, offset, bytes);
  }
}

int
refcount_rebuild (struct qcow2_image *img)
{
  struct counts c;
  int r = -1;

  diag_debug ("%s: dirty image: rebuilding refcounts", img->filename);
  /* In a file that cannot grow, end_cluster is where the stored
   * refcounts end (refcount.c), and the metadata may use clusters past
   * it: count up to the end of the file.
   */
  c.nr = img->w->end_cluster;
  if (img->file->fixed_size)
    c.nr = MAX (c.nr, DIV_ROUND_UP (img->file_size, img->cluster_size));
  c.max = MIN (img->w->refcount_max, (uint64_t) UINT32_MAX);
  c.budget = MAX_ENTRIES_WALKED;
  c.n = calloc (c.nr ? c.nr : 1, sizeof *c.n);
  if (c.n == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  if (metadata_for_each (img, MD_ALL, count_metadata, &c) == -1)
    goto out;

  /* New refcount blocks land past end_cluster, outside this loop, and
   * count themselves.
   */
  while (c.nr > img->w->end_cluster && c.n[c.nr - 1] == 0)
    c.nr--;
  img->w->end_cluster = MAX (img->w->end_cluster, c.nr);
  for (uint64_t i = 0; i < c.nr; i++) {
    uint64_t stored;

    if (refcount_get (img, i, &stored) == -1)
      goto out;
    if (stored != c.n[i] && refcount_set (img, i, c.n[i]) == -1)
      goto out;
  }
  img->w->free_hint = 0;
  if (checkpoint (img) == -1)
    goto out;
  img->hdr.incompatible &= ~INCOMPAT_DIRTY;
  r = header_write_u64 (img, HDR_INCOMPATIBLE, img->hdr.incompatible);
 out:
  free (c.n);
  return r;
}
