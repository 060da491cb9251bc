/* Repairing what a check found (qcow2_check_repair, qcow2-check.h):
 * the refcounts are made equal to the references counted, and the
 * COPIED flags of the active tables ("Cluster mapping": refcount is
 * exactly one) made to agree, through the engine's write path.
 *
 * What may be fixed: leaks (FIX_LEAKS) lower a refcount to the
 * references; errors (FIX_ERRORS) raise one to them.  COPIED flags
 * follow the refcounts the repair leaves, as QEMU fixes them either way.
 * Entries that are wrong themselves (misaligned, reserved bits, past the
 * end of the file) are not changed: the second check reports them.
 *
 * The order makes each step durable (a checkpoint) before the next, so
 * that a crash between steps leaves an image a later check can still
 * repair, with the guest's data as it was:
 *   1. refcounts raised (an entry's cluster is never free on disk);
 *   2. COPIED flags that claim too much cleared (a writer then copies
 *      rather than writes in place: always safe);
 *   3. refcounts lowered (only leaks: nothing on disk uses them);
 *   4. COPIED flags that are missing set (refcount 1 is on disk now).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "byte-order.h"
#include "check.h"
#include "cleanup.h"
#include "diag.h"
#include "io.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

struct repair {
  struct check c;               /* the first check: references counted */
  uint64_t *stored;             /* the refcounts it found */
  uint64_t n;                   /* clusters of both arrays */
  unsigned fix;
  bool flags;                   /* COPIED flags are repaired */
  uint64_t corruptions_fixed, leaks_fixed;
};

static uint64_t
counted (const struct repair *p, uint64_t i)
{
  return i < p->c.nr_counts ? p->c.counts[i] : 0;
}

/* The refcount the repair leaves. */
static uint64_t
wanted (const struct repair *p, uint64_t i)
{
  uint64_t s = i < p->n ? p->stored[i] : 0, n = counted (p, i);

  if ((s > n && (p->fix & QCOW2_FIX_LEAKS)) ||
      (s < n && (p->fix & QCOW2_FIX_ERRORS)))
    return n;
  return s;
}

static int
read_stored (struct repair *p)
{
  p->n = MAX (p->c.nr_counts, p->c.file_clusters);
  p->stored = calloc (p->n ? p->n : 1, sizeof *p->stored);
  if (p->stored == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  for (uint64_t i = 0; i < p->n; i++)
    if (stored_refcount (&p->c, i, &p->stored[i]) == -1)
      return -1;
  return 0;
}

/* Steps 1 and 3: refcounts up (raise) or down. */
static int
set_refcounts (struct qcow2_image *img, struct repair *p, bool raise)
{
  for (uint64_t i = 0; i < p->n; i++) {
    uint64_t want = wanted (p, i);

    if (raise ? want <= p->stored[i] : want >= p->stored[i])
      continue;
    diag_error ("Repairing cluster %" PRIu64 " refcount=%" PRIu64
                " reference=%" PRIu64, i, p->stored[i], counted (p, i));
    if (refcount_set (img, i, want) == -1)
      return -1;
    if (raise)
      p->corruptions_fixed++;
    else
      p->leaks_fixed++;
  }
  return checkpoint (img);
}

/* Does an entry's COPIED flag need changing in this step (set: step 4,
 * else step 2)?
 */
static bool
flag_to_change (bool copied, bool want_copied, bool set)
{
  return set ? !copied && want_copied : copied && !want_copied;
}

/* Does a metadata range other than an L2 table hold the cluster? */
static int
holds_cluster (struct qcow2_image *img, enum metadata_kind kind,
               uint64_t offset, uint64_t bytes, void *opaque)
{
  const uint64_t *cluster = opaque;

  return (offset >> img->cluster_bits) <= *cluster &&
    *cluster <= (offset + bytes - 1) >> img->cluster_bits;
}

#define MD_NOT_L2 (MD_ALL & ~MD_BIT (MD_ACTIVE_L2) & ~MD_BIT (MD_INACTIVE_L2))

/* The COPIED flags of one L2 table.  A table that is misaligned, past
 * the end of the file, or in a cluster that other metadata (not an L2
 * table) holds too is not written: that would write over the other.
 * QEMU writes a table shared with guest data (the guest sees the
 * change), and so does this.
 */
static int
fix_l2_flags (struct qcow2_image *img, struct repair *p, uint64_t l2_offset,
              bool set)
{
  uint64_t cluster = l2_offset >> img->cluster_bits;
  struct meta_table *t;
  bool dirty = false;
  int r;

  if (!IS_ALIGNED (l2_offset, img->cluster_size) ||
      l2_offset + img->cluster_size > img->file_size)
    return 0;
  if (counted (p, cluster) != 1 &&
      (r = metadata_for_each (img, MD_NOT_L2, holds_cluster, &cluster)) != 0)
    return r == 1 ? 0 : -1;
  if (meta_cache_get (img->l2_cache, img->file, l2_offset, &t) == -1)
    return -1;
  for (uint64_t i = 0; i < l2_entries_per_table (img); i++) {
    unsigned char *e = t->data + i * img->l2_entry_size;
    uint64_t v = load_be64 (e);
    enum entry_type type = entry_type (&p->c, v);
    bool want;

    if (type != E_NORMAL && type != E_ZERO_ALLOC)
      continue;
    want = p->c.data_file ||
      wanted (p, (v & L2E_OFFSET_MASK) >> img->cluster_bits) == 1;
    if (!flag_to_change (v & ENTRY_COPIED, want, set))
      continue;
    diag_error ("Repairing OFLAG_COPIED data cluster: l2_entry=%" PRIx64, v);
    store_be64 (e, v ^ ENTRY_COPIED);
    dirty = true;
    p->corruptions_fixed++;
  }
  if (dirty)
    meta_cache_mark_dirty (img->l2_cache, t);
  meta_cache_put (img->l2_cache, t);
  return 0;
}

/* Steps 2 and 4: the active L1 table's flags and its L2 tables'. */
static int
fix_flags (struct qcow2_image *img, struct repair *p, bool set)
{
  if (!p->flags)
    return 0;
  for (uint32_t i = 0; i < img->l1_size; i++) {
    uint64_t e = img->l1[i], l2_offset = e & L1E_OFFSET_MASK;
    bool want;

    if (l2_offset == 0)
      continue;
    want = wanted (p, l2_offset >> img->cluster_bits) == 1;
    if (flag_to_change (e & ENTRY_COPIED, want, set)) {
      diag_error ("Repairing OFLAG_COPIED L2 cluster: l1_index=%" PRIu32
                  " l1_entry=%" PRIx64, i, e);
      img->l1[i] = e ^ ENTRY_COPIED;
      l1_mark_dirty (img->w, i);
      p->corruptions_fixed++;
    }
    if (fix_l2_flags (img, p, l2_offset, set) == -1)
      return -1;
  }
  return checkpoint (img);
}

/* What a repair cannot do.  With leaks alone to fix, a cluster in use
 * without a refcount, or refcount blocks that are wrong themselves,
 * need the refcount structures rebuilt (an error's repair, as QEMU).
 * The rebuild of misplaced or shared refcount blocks is not done here.
 */
static int
refuse (struct qcow2_image *img, struct repair *p)
{
  if (!(p->fix & QCOW2_FIX_ERRORS) &&
      (p->c.unrefcounted || p->c.rebuild_refblocks)) {
    /* A failed check, for qemu-img. */
    diag_error ("ERROR need to rebuild refcount structures");
    p->c.r->check_errors++;
    return -1;
  }
  if (p->c.rebuild_refblocks) {
    diag_error ("%s: the refcount blocks themselves are misplaced or "
                "shared, and rebuilding them is not supported: not "
                "repaired (qemu-img check -r all rebuilds them)",
                img->filename);
    return -1;
  }
  return 0;
}

static int
repair_steps (struct qcow2_image *img, struct repair *p)
{
  SCOPED_WRLOCK (&img->meta_lock);
  return set_refcounts (img, p, true) == -1 ||
    fix_flags (img, p, false) == -1 ||
    set_refcounts (img, p, false) == -1 ||
    fix_flags (img, p, true) == -1 ? -1 : 0;
}

/* As QEMU: an image found consistent after its repair is no longer
 * dirty (its refcounts are exact) nor corrupt.
 */
static int
mark_clean (struct qcow2_image *img)
{
  const uint64_t bits = INCOMPAT_DIRTY | INCOMPAT_CORRUPT;

  SCOPED_WRLOCK (&img->meta_lock);
  if (!(img->hdr.incompatible & bits))
    return 0;
  img->hdr.incompatible &= ~bits;
  img->w->set_dirty_bit = false;
  return header_write_u64 (img, HDR_INCOMPATIBLE, img->hdr.incompatible) == -1 ||
    io_flush (img->file) == -1 ? -1 : 0;
}

int
qcow2_check_repair (struct qcow2_image *img, unsigned fix,
                    struct qcow2_check_result *r)
{
  struct repair p = { .fix = fix };
  int ret = check_run (&p.c, img, r);

  if (ret == 0 && r->corruptions == 0 && r->leaks == 0 &&
      !(img->hdr.incompatible & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT)))
    goto out;                   /* nothing to repair */
  if (ret == -1 || r->check_errors) {
    ret = -1;
    goto out;
  }
  if (read_stored (&p) == -1 || refuse (img, &p) == -1) {
    ret = -1;
    goto out;
  }
  /* As QEMU: fixing leaks alone, COPIED flags are fixed only when
   * nothing else was wrong (after the leaks, the refcounts are right).
   */
  p.flags = (fix & QCOW2_FIX_ERRORS) ||
    r->corruptions == p.c.copied_corruptions;
  if (write_prepare_for_repair (img) == -1) {
    if (errno == EROFS)
      diag_error ("%s: cannot be opened for writing: not repaired",
                  img->filename);
    ret = -1;
    goto out;
  }
  if (repair_steps (img, &p) == -1) {
    r->check_errors++;
    ret = -1;
    goto out;
  }
  check_free (&p.c);
  ret = check_run (&p.c, img, r);
  r->corruptions_fixed = p.corruptions_fixed;
  r->leaks_fixed = p.leaks_fixed;
  if (ret == 0 && r->corruptions == 0 && r->check_errors == 0 &&
      mark_clean (img) == -1) {
    r->check_errors++;
    ret = -1;
  }
 out:
  check_free (&p.c);
  free (p.stored);
  return ret;
}
