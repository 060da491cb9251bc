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

/* An L1 table in host byte order. */
static int
count_l1 (struct qcow2_image *img, struct counts *c, const uint64_t *l1,
          uint32_t l1_size)
{
  for (uint32_t i = 0; i < l1_size; i++) {
    uint64_t l2 = l1[i] & L1E_OFFSET_MASK;

    if (l2 == 0)
      continue;
    if (!IS_ALIGNED (l2, img->cluster_size))
      return image_corrupt (img, "L2 table offset %#" PRIx64 " is not aligned",
                            l2);
    if (count_range (img, c, l2, img->cluster_size) == -1 ||
        spend (img, c, l2_entries_per_table (img)) == -1 ||
        count_l2_table (img, c, l2) == -1)
      return -1;
  }
  return 0;
}

static int
count_snapshot (struct qcow2_image *img, struct counts *c,
                const struct snapshot_l1 *sn)
{
  uint64_t bytes = (uint64_t) sn->size * 8;
  uint64_t *l1;
  int r;

  if (sn->size == 0)
    return 0;
  if (spend (img, c, sn->size) == -1)
    return -1;
  l1 = malloc (bytes);
  if (l1 == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  r = io_pread (img->file, l1, bytes, sn->offset);
  for (uint32_t i = 0; r == 0 && i < sn->size; i++)
    l1[i] = load_be64 (&l1[i]);
  if (r == 0)
    r = count_range (img, c, sn->offset, bytes);
  if (r == 0)
    r = count_l1 (img, c, l1, sn->size);
  free (l1);
  return r;
}

static int
count_everything (struct qcow2_image *img, struct counts *c)
{
  const struct write_state *w = img->w;

  if (count_range (img, c, 0, img->cluster_size) == -1 ||
      count_range (img, c, img->hdr.l1_table_offset,
                   (uint64_t) img->l1_size * 8) == -1 ||
      count_l1 (img, c, img->l1, img->l1_size) == -1 ||
      count_range (img, c, w->reftable_offset, w->reftable_entries * 8) == -1)
    return -1;
  for (uint64_t i = 0; i < w->reftable_entries; i++)
    if (w->reftable[i] &&
        count_range (img, c, w->reftable[i], img->cluster_size) == -1)
      return -1;
  /* Snapshots share clusters: each path from an L1 table counts. */
  if (count_range (img, c, img->hdr.snapshots_offset,
                   img->snapshot_table_bytes) == -1)
    return -1;
  for (uint32_t i = 0; i < img->hdr.nb_snapshots; i++)
    if (count_snapshot (img, c, &img->snapshot_l1s[i]) == -1)
      return -1;
  if (img->hdr.crypto_offset &&
      count_range (img, c, img->hdr.crypto_offset, img->hdr.crypto_length) == -1)
    return -1;
  return 0;
}

int
refcount_rebuild (struct qcow2_image *img)
{
  struct counts c;
  int r = -1;

  diag_debug ("%s: dirty image: rebuilding refcounts", img->filename);
  c.nr = img->w->end_cluster;
  c.max = MIN (img->w->refcount_max, (uint64_t) UINT32_MAX);
  c.budget = MAX_ENTRIES_WALKED;
  c.n = calloc (c.nr ? c.nr : 1, sizeof *c.n);
  if (c.n == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  if (count_everything (img, &c) == -1)
    goto out;

  /* New refcount blocks land past end_cluster, outside this loop, and
   * count themselves.
   */
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
