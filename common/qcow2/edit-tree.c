/* Walks over whole L1 trees and the table and header steps every
 * structural edit of an image shares (edit.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "diag.h"
#include "edit.h"
#include "io.h"
#include "refcount-format.h"
#include "rounding.h"
#include "write-state.h"

int
edit_begin (struct qcow2_image *img, const char *what)
{
  if (img->qcow1) {
    diag_error ("%s: cannot %s: the image is in the old qcow format",
                img->filename, what);
    errno = ENOTSUP;
    return -1;
  }
  return checkpoint (img);
}

int
l1_table_read (struct qcow2_image *img, uint64_t offset, uint32_t n,
               uint64_t **l1)
{
  *l1 = NULL;
  if (n == 0)
    return 0;
  *l1 = malloc ((uint64_t) n * 8);
  if (*l1 == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  if (io_pread (img->file, *l1, (uint64_t) n * 8, offset) == -1) {
    free (*l1);
    *l1 = NULL;
    return -1;
  }
  for (uint32_t i = 0; i < n; i++)
    (*l1)[i] = load_be64 (&(*l1)[i]);
  return 0;
}

/* l2_table: the range is an L2 table, else what an entry points at. */
typedef int (*range_fn) (struct qcow2_image *img, uint64_t offset,
                         uint64_t bytes, bool l2_table);

/* Call fn for every L2 table of l1 and every host range its entries
 * hold in the image file.
 */
static int
tree_walk (struct qcow2_image *img, const uint64_t *l1, uint32_t n,
           range_fn fn)
{
  const uint64_t entries = l2_entries_per_table (img);

  for (uint32_t i = 0; i < n; i++) {
    int64_t l2 = l1_entry_check (img, l1[i], i);
    struct meta_table *t;
    int r = 0;

    if (l2 <= 0) {
      if (l2 == -1)
        return -1;
      continue;
    }
    if (fn (img, l2, img->cluster_size, true) == -1 ||
        meta_cache_get (img->l2_cache, img->file, l2, &t) == -1)
      return -1;
    for (uint64_t j = 0; j < entries && r == 0; j++) {
      struct l2_entry d;
      uint64_t host, len;

      r = l2_decode (img, t, j, &d);
      if (r == 0 && l2_entry_host_range (img, &d, &host, &len))
        r = fn (img, host, len, false);
    }
    meta_cache_put (img->l2_cache, t);
    if (r == -1)
      return -1;
  }
  return 0;
}

static int
raise_range (struct qcow2_image *img, uint64_t offset, uint64_t bytes,
             bool l2_table)
{
  uint64_t first = offset >> img->cluster_bits;
  uint64_t last = (offset + bytes - 1) >> img->cluster_bits;

  /* A hostile image can point a data entry at its own metadata. */
  if (!l2_table && check_no_overlap (img, offset, bytes) == -1)
    return -1;
  for (uint64_t c = first; c <= last; c++) {
    uint64_t v;

    if (refcount_get_in_use (img, c, &v) == -1)
      return -1;
    if (refcount_set (img, c, v + 1) == -1)
      return -1;
  }
  return 0;
}

/* Refuse before anything changes where a refcount is at its maximum
 * (narrow refcounts: 2 bits hold 3 references).
 */
static int
check_raise (struct qcow2_image *img, uint64_t offset, uint64_t bytes,
             bool l2_table)
{
  uint64_t first = offset >> img->cluster_bits;
  uint64_t last = (offset + bytes - 1) >> img->cluster_bits;

  (void) l2_table;
  for (uint64_t c = first; c <= last; c++) {
    uint64_t v;

    if (refcount_get (img, c, &v) == -1)
      return -1;
    if (v >= img->w->refcount_max) {
      diag_error ("%s: cluster %#" PRIx64 " already has the most references "
                  "%u-bit refcounts hold (%" PRIu64 ")", img->filename,
                  c << img->cluster_bits, 1u << img->hdr.refcount_order, v);
      errno = EMLINK;
      return -1;
    }
  }
  return 0;
}

int
tree_raise (struct qcow2_image *img, const uint64_t *l1, uint32_t n)
{
  if (tree_walk (img, l1, n, check_raise) == -1)
    return -1;
  /* Half raised refcounts must never reach the disk. */
  if (tree_walk (img, l1, n, raise_range) == -1)
    return write_failed (img);
  return 0;
}

static int
release_range (struct qcow2_image *img, uint64_t offset, uint64_t bytes,
               bool l2_table)
{
  if (!l2_table && check_no_overlap (img, offset, bytes) == -1)
    return -1;
  return refcount_release (img, offset, bytes);
}

int
tree_release (struct qcow2_image *img, const uint64_t *l1, uint32_t n)
{
  return tree_walk (img, l1, n, release_range);
}

/* Is the refcount of the cluster at offset exactly 1? */
static int
refcount_is_one (struct qcow2_image *img, uint64_t offset, bool *one)
{
  uint64_t v;

  if (refcount_get (img, offset >> img->cluster_bits, &v) == -1)
    return -1;
  *one = v == 1;
  return 0;
}

/* The entries of one L2 table; *changed says if any flag moved. */
static int
sync_l2_copied (struct qcow2_image *img, struct meta_table *t, bool *changed)
{
  const uint64_t entries = l2_entries_per_table (img);

  *changed = false;
  for (uint64_t j = 0; j < entries; j++) {
    struct l2_entry d;
    bool one;

    if (l2_decode (img, t, j, &d) == -1)
      return -1;
    /* Compressed entries never carry COPIED; data in an external data
     * file has no refcount.
     */
    if (d.kind == MAP_COMPRESSED || !d.has_host || img->data != img->file)
      continue;
    if (refcount_is_one (img, d.host, &one) == -1)
      return -1;
    if (one != ((d.raw & ENTRY_COPIED) != 0)) {
      store_be64 (t->data + j * img->l2_entry_size, d.raw ^ ENTRY_COPIED);
      *changed = true;
    }
  }
  return 0;
}

int
tree_sync_copied (struct qcow2_image *img, uint64_t *l1, uint32_t n,
                  bool active)
{
  for (uint32_t i = 0; i < n; i++) {
    int64_t l2 = l1_entry_check (img, l1[i], i);
    struct meta_table *t;
    bool one, changed;
    int r;

    if (l2 <= 0) {
      if (l2 == -1)
        return -1;
      continue;
    }
    if (refcount_is_one (img, l2, &one) == -1)
      return -1;
    if (one != ((l1[i] & ENTRY_COPIED) != 0)) {
      l1[i] ^= ENTRY_COPIED;
      if (active)
        l1_mark_dirty (img->w, i);
    }
    if (meta_cache_get (img->l2_cache, img->file, l2, &t) == -1)
      return -1;
    r = sync_l2_copied (img, t, &changed);
    if (r == 0 && changed)
      meta_cache_mark_dirty (img->l2_cache, t);
    meta_cache_put (img->l2_cache, t);
    if (r == -1)
      return -1;
  }
  return 0;
}

int
table_place (struct qcow2_image *img, const void *buf, uint64_t bytes,
             uint64_t *offset)
{
  uint64_t n = DIV_ROUND_UP (bytes, img->cluster_size);
  int64_t off;

  off = n > refcount_max_run (img) ? refcount_alloc_at_end (img, n)
    : refcount_alloc (img, n);
  if (off == -1 ||
      claim_metadata_space (img, off, n << img->cluster_bits) == -1 ||
      overlap_add (img, off, n << img->cluster_bits) == -1 ||
      io_pwrite (img->file, buf, bytes, off) == -1)
    return write_failed (img);
  *offset = off;
  return 0;
}

int
header_switch (struct qcow2_image *img, unsigned field, const void *buf,
               size_t len)
{
  if (io_pwrite (img->file, buf, len, field) == -1 ||
      io_flush (img->file) == -1)
    return write_failed (img);
  return 0;
}

int
overlap_index_rebuild (struct qcow2_image *img)
{
  overlap_index_free (img);
  if (overlap_index_build (img) == -1)
    return write_failed (img);
  return 0;
}
