/* Refcounts: the refcount table, refcount blocks of every width, free
 * space search and allocation ("Host cluster management" in
 * qcow2.txt).  Called with img->meta_lock held exclusively.
 *
 * New refcount blocks and grown refcount tables are placed past the end
 * of everything (end_cluster), where nothing can be in the way; data
 * reuses free space first.
 *
 * A file that cannot grow (io fixed_size: a layer of nbdkit, a block
 * device) has room only below its end (limit_cluster).  There the end
 * of everything is where the clusters in use end, not the end of the
 * file, and an allocation that would reach past the file fails with
 * ENOSPC (a lack of room, see write-state.h) before it changes
 * anything.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "refcount-format.h"
#include "rounding.h"
#include "write-state.h"

#define REFBLOCK_CACHE_SIZE (1024 * 1024)

static uint64_t
entries_per_block (const struct qcow2_image *img)
{
  return UINT64_C (1) << img->w->rb_bits;
}

static int
load_reftable (struct qcow2_image *img)
{
  struct write_state *w = img->w;
  const struct qcow2_header *h = &img->hdr;
  uint64_t bytes = (uint64_t) h->refcount_table_clusters << img->cluster_bits;

  w->reftable_entries = bytes / 8;
  w->reftable_offset = h->refcount_table_offset;
  w->reftable = malloc (bytes);
  if (w->reftable == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  if (io_pread (img->file, w->reftable, bytes, w->reftable_offset) == -1)
    return -1;
  for (uint64_t i = 0; i < w->reftable_entries; i++) {
    uint64_t e = load_be64 (&w->reftable[i]);

    if (e & REFT_RESERVED_MASK)
      return image_corrupt (img, "refcount table entry %" PRIu64 " (%#" PRIx64
                            ") has reserved bits set", i, e);
    if (e && (!IS_ALIGNED (e, img->cluster_size) ||
              !range_within (e, img->cluster_size, img->file_size)))
      return image_corrupt (img, "refcount block offset %#" PRIx64 " in "
                            "refcount table entry %" PRIu64 " is %s", e, i,
                            IS_ALIGNED (e, img->cluster_size)
                            ? "beyond the end of the file" : "not aligned");
    w->reftable[i] = e;
  }
  return 0;
}

static int get_block (struct qcow2_image *img, uint64_t b,
                      struct meta_table **t);

/* The first cluster past every cluster in use: past the last cluster
 * with a refcount, and past all metadata.  Found from the top: usually
 * one refcount block is read.
 */
static int
used_end (struct qcow2_image *img, uint64_t *end)
{
  struct write_state *w = img->w;
  const uint64_t per_block = entries_per_block (img);

  *end = MAX (overlap_end (img), UINT64_C (1));
  for (uint64_t b = w->reftable_entries; b-- > 0; ) {
    struct meta_table *t;
    uint64_t i = per_block;

    if (w->reftable[b] == 0)
      continue;
    if (get_block (img, b, &t) == -1)
      return -1;
    while (i > 0 && refblock_get (t->data, i - 1,
                                  img->hdr.refcount_order) == 0)
      i--;
    meta_cache_put (w->refblock_cache, t);
    if (i > 0) {
      *end = MAX (*end, b * per_block + i);
      break;
    }
  }
  return 0;
}

int
refcount_init (struct qcow2_image *img)
{
  struct write_state *w = img->w;
  unsigned order = img->hdr.refcount_order;

  w->rb_bits = refblock_bits (img->cluster_bits, order);
  w->refcount_max = refcount_max (order);
  w->end_cluster = DIV_ROUND_UP (img->file_size, img->cluster_size);
  w->limit_cluster = UINT64_MAX;
  w->free_hint = 0;
  w->refblock_cache = meta_cache_create (img->cluster_size, REFBLOCK_CACHE_SIZE);
  if (w->refblock_cache == NULL)
    return -1;
  meta_cache_set_debug (w->refblock_cache, &img->debug, img->filename,
                        "refcount block");
  if (load_reftable (img) == -1 ||
      overlap_index_build (img) == -1)
    return -1;
  if (!img->file->fixed_size)
    return 0;
  w->limit_cluster = img->file_size >> img->cluster_bits;
  if (used_end (img, &w->end_cluster) == -1)
    return -1;
  diag_debug ("%s: the file cannot grow: clusters in use end at %" PRIu64
              ", room for %" PRIu64 " more", img->filename,
              w->end_cluster << img->cluster_bits,
              w->limit_cluster > w->end_cluster
              ? w->limit_cluster - w->end_cluster : 0);
  return 0;
}

void
refcount_fini (struct qcow2_image *img)
{
  struct write_state *w = img->w;

  overlap_index_free (img);
  meta_cache_destroy (w->refblock_cache);
  free (w->reftable);
  free (w->pending);
}

uint64_t
refcount_max_run (const struct qcow2_image *img)
{
  /* Half a refcount block's span keeps the search cheap. */
  return entries_per_block (img) / 2;
}

/* Fail with ENOSPC unless clusters up to index end (exclusive) fit in
 * a file that cannot grow.
 */
static int
check_room (struct qcow2_image *img, uint64_t end)
{
  if (end <= img->w->limit_cluster)
    return 0;
  diag_error ("%s: no room left: the file cannot grow past its %" PRIu64
              " bytes and has no free clusters for this request",
              img->filename, img->w->limit_cluster << img->cluster_bits);
  errno = ENOSPC;
  return -1;
}

/* Reserve n clusters past the end of everything. */
static uint64_t
reserve_at_end (struct qcow2_image *img, uint64_t n)
{
  uint64_t c = img->w->end_cluster;

  img->w->end_cluster += n;
  img->file_size = MAX (img->file_size, img->w->end_cluster << img->cluster_bits);
  if (img->data == img->file)
    img->data_size = img->file_size;
  return c;
}

static int set_count (struct qcow2_image *img, uint64_t cluster, uint64_t value);

/* Grow the refcount table to at least `needed` entries.  The new table
 * goes past the end of the image; the header is switched over to it at
 * the next checkpoint and the old one is released after that.
 */
static int
grow_reftable (struct qcow2_image *img, uint64_t needed)
{
  struct write_state *w = img->w;
  const uint64_t per_cluster = img->cluster_size / 8;
  uint64_t old_entries = w->reftable_entries, new_entries, k, t;
  uint64_t old_offset = w->reftable_offset;
  uint64_t *table;

  new_entries = reftable_round_entries (MAX (needed, old_entries * 2),
                                        img->cluster_bits);
  for (;;) {
    k = new_entries / per_cluster;
    t = w->end_cluster;
    /* The table must also cover the blocks that will count itself. */
    uint64_t last_block = ((t + k + 2) >> w->rb_bits) + 1;
    if (last_block <= new_entries)
      break;
    new_entries = reftable_round_entries (last_block, img->cluster_bits);
  }
  if (new_entries * 8 > MAX_REFTABLE_BYTES) {
    diag_error ("%s: the refcount table would exceed %d bytes",
                img->filename, MAX_REFTABLE_BYTES);
    errno = EFBIG;
    return -1;
  }
  /* The table, and the blocks that will count it. */
  if (check_room (img, t + k + 2) == -1)
    return -1;
  table = realloc (w->reftable, new_entries * 8);
  if (table == NULL) {
    diag_error ("realloc: %m");
    return -1;
  }
  memset (table + old_entries, 0, (new_entries - old_entries) * 8);
  w->reftable = table;
  /* Space first: if it cannot be had, the old table stays in use. */
  t = reserve_at_end (img, k);
  if (claim_metadata_space (img, t << img->cluster_bits,
                            k << img->cluster_bits) == -1 ||
      overlap_add (img, t << img->cluster_bits, k << img->cluster_bits) == -1)
    return -1;
  overlap_remove (img, old_offset, old_entries * 8);
  w->reftable_entries = new_entries;
  w->reftable_offset = t << img->cluster_bits;
  w->reftable_moved = w->reftable_dirty = true;

  /* Past here a failure leaves the new table not counting itself. */
  for (uint64_t c = t; c < t + k; c++)
    if (set_count (img, c, 1) == -1)
      return write_failed (img);
  if (refcount_release (img, old_offset, old_entries * 8) == -1)
    return write_failed (img);
  return 0;
}

/* Make sure refcount block b exists.  A new block lives past the end
 * of the image and counts itself if it can, else its own block is made
 * the same way.
 */
static int
ensure_block (struct qcow2_image *img, uint64_t b)
{
  struct write_state *w = img->w;
  struct meta_table *t;
  uint64_t home;

  if (b >= w->reftable_entries && grow_reftable (img, b + 1) == -1)
    return -1;
  if (w->reftable[b])
    return 0;
  /* The block, and room for the block that may have to count it. */
  if (check_room (img, w->end_cluster + 3) == -1)
    return -1;
  home = reserve_at_end (img, 1);
  if (claim_metadata_space (img, home << img->cluster_bits,
                            img->cluster_size) == -1 ||
      overlap_add (img, home << img->cluster_bits, img->cluster_size) == -1 ||
      meta_cache_get_new (w->refblock_cache, home << img->cluster_bits, &t) == -1)
    return -1;
  meta_cache_put (w->refblock_cache, t);
  w->reftable[b] = home << img->cluster_bits;
  w->reftable_dirty = true;
  /* A block that does not count itself could be handed out as data. */
  if (set_count (img, home, 1) == -1)
    return write_failed (img);
  return 0;
}

static int
get_block (struct qcow2_image *img, uint64_t b, struct meta_table **t)
{
  return meta_cache_get (img->w->refblock_cache, img->file,
                         img->w->reftable[b], t);
}

static int
set_count (struct qcow2_image *img, uint64_t cluster, uint64_t value)
{
  struct write_state *w = img->w;
  uint64_t b = cluster >> w->rb_bits;
  struct meta_table *t;

  if (value > w->refcount_max) {
    diag_error ("%s: refcount of cluster %" PRIu64 " would overflow "
                "(%u-bit refcounts)", img->filename, cluster,
                1u << img->hdr.refcount_order);
    errno = EINVAL;
    return -1;
  }
  if (ensure_block (img, b) == -1 || get_block (img, b, &t) == -1)
    return -1;
  refblock_set (t->data, cluster & (entries_per_block (img) - 1),
                   img->hdr.refcount_order, value);
  meta_cache_mark_dirty (w->refblock_cache, t);
  meta_cache_put (w->refblock_cache, t);
  return 0;
}

int
refcount_set (struct qcow2_image *img, uint64_t cluster, uint64_t value)
{
  return set_count (img, cluster, value);
}

int
refcount_get (struct qcow2_image *img, uint64_t cluster, uint64_t *value)
{
  struct write_state *w = img->w;
  uint64_t b = cluster >> w->rb_bits;
  struct meta_table *t;

  if (b >= w->reftable_entries || w->reftable[b] == 0) {
    *value = 0;
    return 0;
  }
  if (get_block (img, b, &t) == -1)
    return -1;
  *value = refblock_get (t->data, cluster & (entries_per_block (img) - 1),
                         img->hdr.refcount_order);
  meta_cache_put (w->refblock_cache, t);
  return 0;
}

int
refcount_get_in_use (struct qcow2_image *img, uint64_t cluster,
                     uint64_t *value)
{
  if (refcount_get (img, cluster, value) == -1)
    return -1;
  if (*value == 0)
    return write_corrupt (img, "cluster %#" PRIx64 " is in use but its "
                          "refcount is 0", cluster << img->cluster_bits);
  return 0;
}

/* Find n contiguous free clusters, lowest first. */
static int64_t
find_free_run (struct qcow2_image *img, uint64_t n)
{
  struct write_state *w = img->w;
  uint64_t start = MAX (w->free_hint, UINT64_C (1)), c = start;

  while (c - start < n) {
    uint64_t v;

    /* Past the end of the file a cluster is free unless its refcount
     * claims it, as in QEMU: a leak from a crash, or a hostile claim
     * under which an L2 entry waits for the file to grow (found by
     * fuzzing: a new data cluster there was also another guest
     * cluster's).  Either is skipped like any used cluster; a claim
     * more than a refcount block's span out is corruption (and would
     * make this scan endless).
     */
    if (refcount_get (img, c, &v) == -1)
      return -1;
    if (v != 0 && c >= w->end_cluster &&
        c - w->end_cluster >= entries_per_block (img))
      return write_corrupt (img, "the refcount of cluster %#" PRIx64
                            " claims it, far beyond the end of the file",
                            c << img->cluster_bits);
    c++;
    if (v != 0)
      start = c;
  }
  return start;
}

/* A run that refcount_alloc could not count in full (no room for a
 * refcount block) is given back: the blocks its counted clusters are
 * in exist, so this allocates nothing.
 */
static int
uncount_run (struct qcow2_image *img, uint64_t start, uint64_t end,
             uint64_t free_hint)
{
  int e = errno;

  for (uint64_t c = start; c < end; c++)
    if (set_count (img, c, 0) == -1)
      return write_failed (img);
  img->w->free_hint = free_hint;
  errno = e;
  return -1;
}

int64_t
refcount_alloc (struct qcow2_image *img, uint64_t n)
{
  struct write_state *w = img->w;
  uint64_t hint = w->free_hint;
  int64_t start = find_free_run (img, n);

  if (start == -1 || check_room (img, start + n) == -1)
    return -1;
  /* Like QEMU, holes too small for this run are skipped from now on,
   * until a release lowers the hint again: no rescans from the start.
   */
  w->free_hint = start + n;
  if ((uint64_t) start + n > w->end_cluster)
    reserve_at_end (img, start + n - w->end_cluster);
  for (uint64_t c = start; c < (uint64_t) start + n; c++)
    if (set_count (img, c, 1) == -1)
      return uncount_run (img, start, c, hint);
  if (check_no_overlap (img, (uint64_t) start << img->cluster_bits,
                        n << img->cluster_bits) == -1)
    return -1;
  image_debug (img, QCOW2_DEBUG_ALLOC,
               "%s: alloc: %" PRIu64 " cluster(s) at host offset %#" PRIx64,
               img->filename, n, (uint64_t) start << img->cluster_bits);
  return (uint64_t) start << img->cluster_bits;
}

int64_t
refcount_alloc_at_end (struct qcow2_image *img, uint64_t n)
{
  uint64_t start;

  if (check_room (img, img->w->end_cluster + n) == -1)
    return -1;
  start = reserve_at_end (img, n);
  for (uint64_t c = start; c < start + n; c++)
    if (set_count (img, c, 1) == -1)
      return write_failed (img);
  return start << img->cluster_bits;
}

int
refcount_release (struct qcow2_image *img, uint64_t offset, uint64_t bytes)
{
  struct write_state *w = img->w;
  uint64_t first = offset >> img->cluster_bits;
  uint64_t last = (offset + bytes - 1) >> img->cluster_bits;

  for (uint64_t c = first; c <= last; c++) {
    uint64_t v;

    /* A cluster still in use has a refcount until the release is
     * applied, which keeps the allocator off it meanwhile.  One that
     * claims 0 (hostile refcounts) could be handed out again at once,
     * and the release would then free its new owner's data.
     */
    if (refcount_get_in_use (img, c, &v) == -1)
      return -1;
    if (w->nr_pending == w->cap_pending) {
      size_t cap = w->cap_pending ? w->cap_pending * 2 : 256;
      uint64_t *p = realloc (w->pending, cap * sizeof *p);
      if (p == NULL) {
        diag_error ("realloc: %m");
        return -1;
      }
      w->pending = p;
      w->cap_pending = cap;
    }
    w->pending[w->nr_pending++] = c;
  }
  image_debug (img, QCOW2_DEBUG_ALLOC,
               "%s: alloc: release of host %#" PRIx64 " (%" PRIu64
               " bytes), applied at the next metadata write-back",
               img->filename, offset, bytes);
  return 0;
}

/* Give the space of freed clusters back to the file system, merging
 * neighbours into one call.  A failure is reported and ignored: the
 * clusters are free in the refcounts whatever they hold, and only
 * their space stays allocated until they are reused.
 */
static void
punch_run (struct qcow2_image *img, uint64_t first, uint64_t n)
{
  if (n)
    io_punch (img->file, first << img->cluster_bits, n << img->cluster_bits);
}

int
refcount_apply_releases (struct qcow2_image *img)
{
  struct write_state *w = img->w;
  uint64_t run_first = 0, run_len = 0;

  for (size_t i = 0; i < w->nr_pending; i++) {
    uint64_t c = w->pending[i], v;

    if (refcount_get (img, c, &v) == -1)
      return -1;
    if (v == 0)
      return write_corrupt (img, "cluster %#" PRIx64 " is freed but its "
                            "refcount is already 0", c << img->cluster_bits);
    if (set_count (img, c, v - 1) == -1)
      return -1;
    if (v - 1 > 0)
      continue;
    meta_cache_drop (img->l2_cache, c << img->cluster_bits);
    if (w->compressed_next >> img->cluster_bits == c)
      w->compressed_next = 0;   /* no more packing into freed space */
    w->free_hint = MIN (w->free_hint, c);
    if (run_len && run_first + run_len == c)
      run_len++;
    else {
      punch_run (img, run_first, run_len);
      run_first = c;
      run_len = 1;
    }
  }
  w->nr_pending = 0;
  punch_run (img, run_first, run_len);
  return 0;
}

int
refcount_writeback (struct qcow2_image *img)
{
  struct write_state *w = img->w;

  if (meta_cache_writeback (w->refblock_cache, img->file) == -1)
    return -1;
  if (!w->reftable_dirty)
    return 0;

  /* New blocks must be on disk before the table points at them. */
  if (io_flush (img->file) == -1)
    return -1;
  {
    uint64_t bytes = w->reftable_entries * 8;
    uint64_t *be = malloc (bytes);
    int r;

    if (be == NULL) {
      diag_error ("malloc: %m");
      return -1;
    }
    table_store ((unsigned char *) be, w->reftable, w->reftable_entries, 0);
    r = io_pwrite (img->file, be, bytes, w->reftable_offset);
    free (be);
    if (r == -1)
      return -1;
  }
  if (w->reftable_moved) {
    unsigned char fields[12];

    if (io_flush (img->file) == -1)
      return -1;
    /* refcount_table_offset and refcount_table_clusters are adjacent:
     * one write switches both.
     */
    store_be64 (fields, w->reftable_offset);
    store_be32 (fields + 8,
                reftable_clusters (w->reftable_entries, img->cluster_bits));
    if (io_pwrite (img->file, fields, sizeof fields,
                   HDR_REFCOUNT_TABLE_OFFSET) == -1)
      return -1;
    img->hdr.refcount_table_offset = w->reftable_offset;
    img->hdr.refcount_table_clusters =
      reftable_clusters (w->reftable_entries, img->cluster_bits);
    w->reftable_moved = false;
  }
  w->reftable_dirty = false;
  return 0;
}
