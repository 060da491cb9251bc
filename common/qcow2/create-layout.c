/* Creating an image, step 2: the model of QEMU's cluster allocator
 * and refcount structures, and the L1 table (see create.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "create.h"
#include "diag.h"
#include "format.h"
#include "minmax.h"
#include "refcount-format.h"
#include "rounding.h"

int
create_no_memory (void)
{
  diag_error ("create: out of memory");
  errno = ENOMEM;
  return -1;
}

static int
set_used (struct layout *l, uint64_t cluster, bool used)
{
  if (cluster >= l->refcount_cap) {
    uint64_t cap = MAX (l->refcount_cap * 2, ROUND_UP (cluster + 1, 4096));
    uint8_t *p = realloc (l->refcount, cap / 8);

    if (p == NULL)
      return create_no_memory ();
    memset (p + l->refcount_cap / 8, 0, (cap - l->refcount_cap) / 8);
    l->refcount = p;
    l->refcount_cap = cap;
  }
  if (used)
    l->refcount[cluster / 8] |= 1u << (cluster % 8);
  else
    l->refcount[cluster / 8] &= ~(1u << (cluster % 8));
  return 0;
}

static int
too_big (void)
{
  diag_error ("create: the image would need host offsets beyond 2^56 "
              "(try a larger cluster size)");
  errno = EFBIG;
  return -1;
}

/* QEMU's alloc_clusters_noref: the first run of n free clusters at or
 * after free_index.  Refcounts are not touched.
 */
static int
find_free (struct layout *l, uint64_t n, uint64_t *first)
{
  uint64_t i;

 retry:
  for (i = 0; i < n; i++) {
    uint64_t c = l->free_index++;

    if (c >= l->max_clusters)
      return too_big ();
    if (layout_is_used (l, c))
      goto retry;
  }
  *first = l->free_index - n;
  return 0;
}

static int update_refcounts (struct layout *l, uint64_t first, uint64_t n,
                             bool increase);

/* QEMU's qcow2_refcount_metadata_size: how many refcount blocks cover
 * `clusters` clusters plus the refcount structures themselves, found as
 * a fixed point; "generous" adds room for half the table again.
 */
static uint64_t
refblocks_needed (uint64_t clusters, uint64_t cluster_size,
                  uint64_t refblock_entries, bool generous)
{
  uint64_t per_table_cluster = cluster_size / TABLE_ENTRY_SIZE;
  uint64_t table = 0, blocks = 0, n = 0, last;

  do {
    last = n;
    blocks = DIV_ROUND_UP (clusters + table + blocks, refblock_entries);
    table = DIV_ROUND_UP (blocks, per_table_cluster);
    n = clusters + blocks + table;
    if (n == last && generous) {
      clusters += DIV_ROUND_UP (table, 2);
      n = 0;
      generous = false;
    }
  } while (n != last);
  return blocks;
}

/* QEMU's qcow2_refcount_area: a new refcount table starting at cluster
 * `start` (past everything in use), preceded by the refcount blocks
 * that are missing from `start` on, all covering themselves and
 * `additional` clusters after them; unless `exact`, the table gets room
 * to grow by half.  The block new_block (if not 0) goes into slot
 * new_index.  The old table is freed afterwards.  *end is the first
 * cluster after the new structures.
 */
int
layout_grow_reftable (struct layout *l, uint64_t start, uint64_t additional,
                      bool exact, uint64_t new_index, uint64_t new_block,
                      uint64_t *end_ret)
{
  uint64_t cs = l->cluster_size;
  uint64_t entries_per_cluster = cs / TABLE_ENTRY_SIZE;
  uint64_t refblock_entries = UINT64_C (1) << l->refblock_bits;
  uint64_t total, table_size, table_clusters, area_index, i, block;
  uint64_t table_start, end, old_offset, old_clusters;
  uint64_t *table;
  struct stale_table *stale;

  total = refblocks_needed (start + additional, cs, refblock_entries, !exact);
  table_size = exact ? total : total + DIV_ROUND_UP (total, 2);
  table_size = reftable_round_entries (table_size, l->cluster_bits);
  if (table_size * TABLE_ENTRY_SIZE > MAX_REFTABLE_BYTES) {
    diag_error ("create: the refcount table would exceed %d bytes "
                "(try a larger cluster size)", MAX_REFTABLE_BYTES);
    errno = EFBIG;
    return -1;
  }
  if (new_block && new_index >= total) {
    diag_error ("create: internal error: refcount block %" PRIu64
                " outside the new table", new_index);
    errno = EIO;
    return -1;
  }
  table_clusters = table_size / entries_per_cluster;
  area_index = start >> l->refblock_bits;

  table = calloc (table_size, sizeof *table);
  if (table == NULL)
    return create_no_memory ();
  memcpy (table, l->reftable,
          MIN (table_size, l->reftable_entries) * sizeof *table);
  if (new_block)
    table[new_index] = new_block << l->cluster_bits;

  /* The new blocks come first, then the table. */
  table_start = start;
  for (i = area_index; i < total; i++)
    if (table[i] == 0)
      table_start++;
  end = table_start + table_clusters;
  if (end > l->max_clusters) {
    free (table);
    return too_big ();
  }

  block = start;
  for (i = area_index; i < total; i++) {
    uint64_t first_covered = i * refblock_entries, j;

    if (table[i] == 0) {
      table[i] = block << l->cluster_bits;
      layout_written (l, block << l->cluster_bits, cs);
      block++;
    }
    for (j = MAX (first_covered, start);
         j < MIN (end, first_covered + refblock_entries); j++) {
      if (layout_is_used (l, j)) {
        free (table);
        diag_error ("create: internal error: cluster %" PRIu64
                    " is already in use", j);
        errno = EIO;
        return -1;
      }
      if (set_used (l, j, true) == -1) {
        free (table);
        return -1;
      }
    }
  }
  layout_written (l, table_start << l->cluster_bits,
                  table_size * TABLE_ENTRY_SIZE);

  /* Switch, keeping the old table's bytes for the file. */
  stale = realloc (l->stale, (l->nr_stale + 1) * sizeof *stale);
  if (stale == NULL) {
    free (table);
    return create_no_memory ();
  }
  l->stale = stale;
  l->stale[l->nr_stale++] = (struct stale_table) {
    .offset = l->reftable_offset,
    .entries = l->reftable,
    .nr_entries = l->reftable_entries,
  };
  old_offset = l->reftable_offset;
  old_clusters = l->reftable_entries / entries_per_cluster;
  l->reftable = table;
  l->reftable_entries = table_size;
  l->reftable_offset = table_start << l->cluster_bits;

  *end_ret = end;
  return update_refcounts (l, old_offset >> l->cluster_bits, old_clusters,
                           false);
}

/* QEMU's alloc_refcount_block: make sure the refcount block covering
 * `cluster` exists.  Returns 0 if it did, or -1 with errno EAGAIN after
 * making one (the caller must search for its free clusters again,
 * because the new block may have taken one of them), or another error.
 */
static int
ensure_refblock (struct layout *l, uint64_t cluster)
{
  uint64_t index = cluster >> l->refblock_bits;
  uint64_t block, blocks_used, end;

  if (index < l->reftable_entries && l->reftable[index])
    return 0;

  if (find_free (l, 1, &block) == -1)
    return -1;
  if (block >> l->refblock_bits == index) {
    /* The block describes itself. */
    if (set_used (l, block, true) == -1)
      return -1;
  }
  else if (update_refcounts (l, block, 1, true) == -1)
    return -1;
  layout_written (l, block << l->cluster_bits, l->cluster_size);

  if (index < l->reftable_entries)
    l->reftable[index] = block << l->cluster_bits;
  else {
    /* The table is full: new refcount structures go after the groups
     * of clusters in use so far, which end at `cluster` or at the new
     * block, whichever is further.
     */
    blocks_used = DIV_ROUND_UP (MAX (cluster, block) + 1,
                                UINT64_C (1) << l->refblock_bits);
    if (layout_grow_reftable (l, blocks_used << l->refblock_bits, 0, false,
                              index, block, &end) == -1)
      return -1;
  }
  errno = EAGAIN;
  return -1;
}

/* QEMU's update_refcount, for +1 and -1.  A failure undoes what was
 * done; EAGAIN makes the allocator look again from `first`.
 */
static int
update_refcounts (struct layout *l, uint64_t first, uint64_t n, bool increase)
{
  uint64_t c, group = UINT64_MAX;

  for (c = first; c < first + n; c++) {
    if (c >> l->refblock_bits != group) {
      if (ensure_refblock (l, c) == -1) {
        int e = errno;

        if (e == EAGAIN && l->free_index > first)
          l->free_index = first;
        if (c > first)
          update_refcounts (l, first, c - first, !increase);
        errno = e;
        return -1;
      }
      group = c >> l->refblock_bits;
    }
    if (layout_is_used (l, c) == increase) {
      diag_error ("create: internal error: refcount of cluster %" PRIu64
                  " out of range", c);
      errno = EIO;
      return -1;
    }
    if (set_used (l, c, increase) == -1)
      return -1;
    if (!increase && c < l->free_index)
      l->free_index = c;
  }
  return 0;
}

/* QEMU's qcow2_alloc_clusters: n clusters, wherever they fit. */
int
layout_alloc_clusters (struct layout *l, uint64_t n, uint64_t *first)
{
  for (;;) {
    if (find_free (l, n, first) == -1)
      return -1;
    if (update_refcounts (l, *first, n, true) == 0)
      return 0;
    if (errno != EAGAIN)
      return -1;
  }
}

/* QEMU's qcow2_alloc_clusters_at: as many of the n clusters from
 * `first` on as are free, in a row.  Returns the count, or -1.
 */
int64_t
layout_alloc_clusters_at (struct layout *l, uint64_t first, uint64_t n)
{
  uint64_t i;

  for (;;) {
    for (i = 0; i < n && !layout_is_used (l, first + i); i++)
      ;
    if (update_refcounts (l, first, i, true) == 0)
      return i;
    if (errno != EAGAIN)
      return -1;
  }
}

int
layout_init (struct layout *l, uint32_t cluster_size, unsigned refcount_bits,
             bool extended_l2)
{
  uint64_t first;

  memset (l, 0, sizeof *l);
  l->cluster_bits = __builtin_ctz (cluster_size);
  l->cluster_size = cluster_size;
  l->refblock_bits = refblock_bits (l->cluster_bits,
                                    __builtin_ctz (refcount_bits));
  l->l2_bits = l->cluster_bits - (extended_l2 ? 4 : 3);
  l->max_clusters = (MAX_HOST_OFFSET + 1) >> l->cluster_bits;

  /* qcow2_co_create writes the header in cluster 0, a one-cluster
   * refcount table in cluster 1 pointing at an empty refcount block in
   * cluster 2, and then allocates those three clusters.
   */
  l->reftable_entries = cluster_size / TABLE_ENTRY_SIZE;
  l->reftable = calloc (l->reftable_entries, sizeof *l->reftable);
  if (l->reftable == NULL)
    return create_no_memory ();
  l->reftable[0] = 2 * l->cluster_size;
  l->reftable_offset = l->cluster_size;
  layout_written (l, 0, 3 * l->cluster_size);
  if (layout_alloc_clusters (l, 3, &first) == -1)
    return -1;
  return 0;
}

void
layout_free (struct layout *l)
{
  size_t i;

  for (i = 0; i < l->nr_stale; i++)
    free (l->stale[i].entries);
  free (l->stale);
  free (l->refcount);
  free (l->reftable);
  free (l->l1);
  free (l->runs);
}

/* QEMU's qcow2_grow_l1_table, from an empty table, as the truncate to
 * the virtual size does it.
 */
int
layout_make_l1 (struct layout *l, uint64_t size)
{
  uint64_t span = UINT64_C (1) << (l->cluster_bits + l->l2_bits);
  uint64_t first;

  l->l1_size = DIV_ROUND_UP (size, span);
  if (l->l1_size == 0)
    return 0;
  if (l->l1_size * TABLE_ENTRY_SIZE > MAX_L1_BYTES) {
    diag_error ("The image size is too large for file format 'qcow2' "
                "(try using a larger cluster size)");
    errno = EFBIG;
    return -1;
  }
  l->l1 = calloc (l->l1_size, sizeof *l->l1);
  if (l->l1 == NULL)
    return create_no_memory ();
  if (layout_alloc_clusters (l, DIV_ROUND_UP (l->l1_size * TABLE_ENTRY_SIZE,
                                              l->cluster_size), &first) == -1)
    return -1;
  l->l1_offset = first << l->cluster_bits;
  layout_written (l, l->l1_offset, l->l1_size * TABLE_ENTRY_SIZE);
  return 0;
}
