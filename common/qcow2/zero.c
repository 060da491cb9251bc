/* Write-zeroes and discard.
 *
 * Whole clusters (or subclusters, with extended L2) change only their
 * L2 entries: version 3 has a ZERO flag (per subcluster bits with
 * extended L2) that either keeps the cluster's space or frees it;
 * version 2 can only deallocate, which reads as zeroes only without a
 * backing file (docs/interop/qcow2.txt, "Cluster mapping" and
 * "Extended L2 Entries").
 * Partial (sub)clusters are written with zeroes, unless they already
 * read as zeroes.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

#define ZERO_CHUNK (4 * 1024 * 1024)

enum zero_mode {
  ZERO_KEEP,                    /* reads as zero; allocated space may stay */
  ZERO_UNMAP,                   /* reads as zero; space may be freed */
  DISCARD,                      /* contents unspecified; free the space */
};

static uint64_t
granule (const struct qcow2_image *img)
{
  return UINT64_C (1) << img->subcluster_bits;
}

/* True if [offset, offset + count) already reads as zeroes. */
static int
reads_as_zero (struct qcow2_image *img, uint64_t offset, uint64_t count,
               bool *zero)
{
  *zero = true;
  while (count > 0 && *zero) {
    struct mapping m;
    int r;

    r = cluster_map_shared (img, offset, count, &m);
    if (r == -1)
      return -1;
    if (m.kind == MAP_UNALLOCATED)
      *zero = img->backing == NULL || offset >= img->backing->size;
    else
      *zero = m.kind == MAP_ZERO;
    offset += m.length;
    count -= m.length;
  }
  return 0;
}

/* Store zeroes as data, a chunk at a time. */
static int
write_zeroes (struct qcow2_image *img, uint64_t count, uint64_t offset,
              unsigned flags)
{
  unsigned char *zeroes;
  bool zero;
  int r = 0;

  if (reads_as_zero (img, offset, count, &zero) == -1)
    return -1;
  if (zero)
    return 0;
  if (flags & QCOW2_FAST_ZERO) {
    errno = ENOTSUP;
    return -1;
  }
  zeroes = calloc (1, MIN (count, (uint64_t) ZERO_CHUNK));
  if (zeroes == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  while (count > 0 && r == 0) {
    uint64_t n = MIN (count, (uint64_t) ZERO_CHUNK);
    r = qcow2_pwrite (img, zeroes, n, offset, flags & QCOW2_COMPRESSED);
    offset += n;
    count -= n;
  }
  free (zeroes);
  return r;
}

/* Rewrite one L2 entry so that bytes [a, b) of its cluster (whole
 * granules) read as zeroes or are discarded.  Returns 1 if only a data
 * write can do it (part of a compressed cluster).
 */
static int
zero_entry (struct qcow2_image *img, struct meta_table *t, uint64_t index,
            uint32_t a, uint32_t b, enum zero_mode mode)
{
  struct l2_entry d;
  bool copied, keep;

  if (l2_decode (img, t, index, &d) == -1)
    return -1;
  copied = d.has_host && (d.raw & ENTRY_COPIED);
  keep = mode == ZERO_KEEP && copied;

  if (img->extended_l2) {
    uint32_t all = UINT32_MAX;
    uint32_t m = (uint32_t) (((UINT64_C (1) << (b >> img->subcluster_bits)) - 1)
                             & ~((UINT64_C (1) << (a >> img->subcluster_bits)) - 1));

    if (m == all && !keep) {
      if (l2_release_entry (img, &d) == -1)
        return -1;
      l2_store_entry (img, t, index, 0, (uint64_t) all << SC_ZERO_SHIFT);
      return 0;
    }
    if (d.kind == MAP_COMPRESSED)
      return 1;
    l2_store_entry (img, t, index, d.raw,
                 ((uint64_t) (d.zero_bits | m) << SC_ZERO_SHIFT)
                 | (d.alloc_bits & ~m));
    return 0;
  }

  if (img->hdr.version < 3) {
    if (l2_release_entry (img, &d) == -1)
      return -1;
    l2_store_entry (img, t, index, 0, 0);
    return 0;
  }
  if (keep && d.kind != MAP_COMPRESSED) {
    l2_store_entry (img, t, index, d.host | ENTRY_COPIED | L2E_ZERO, 0);
    return 0;
  }
  if (l2_release_entry (img, &d) == -1)
    return -1;
  l2_store_entry (img, t, index, L2E_ZERO, 0);
  return 0;
}

/* Whole granules [offset, offset + n), all in one L2 table, under the
 * lock.  *done says how far it got; *redo, how many bytes from there on
 * only a data write can zero (part of a compressed cluster), or 0.
 */
static int
zero_in_table (struct qcow2_image *img, uint64_t offset, uint64_t n,
               enum zero_mode mode, uint64_t *done, uint64_t *redo)
{
  const uint64_t cluster = offset >> img->cluster_bits;
  struct meta_table *t;
  int r = 0;

  *done = *redo = 0;
  SCOPED_WRLOCK (&img->meta_lock);
  if (write_check_locked (img) == -1)
    return -1;
  while (img->w->inflight &&
         inflight_overlaps (img->w, cluster,
                            DIV_ROUND_UP (offset + n, img->cluster_size)))
    inflight_wait (img);

  /* Nothing to do where no L2 table exists and nothing shows through. */
  if ((img->l1[cluster >> img->l2_bits] & L1E_OFFSET_MASK) == 0 &&
      (img->backing == NULL || offset >= img->backing->size)) {
    *done = n;
    return 0;
  }
  if (l2_for_write (img, cluster >> img->l2_bits, &t) == -1)
    return write_failed_no_room (img);
  while (*done < n && r == 0) {
    uint64_t pos = offset + *done;
    uint32_t a = pos & (img->cluster_size - 1);
    uint32_t b = MIN ((uint64_t) img->cluster_size, a + (n - *done));

    r = zero_entry (img, t, (pos >> img->cluster_bits) & (l2_entries_per_table (img) - 1),
                    a, b, mode);
    if (r == 1) {               /* part of a compressed cluster: redo as data */
      *redo = b - a;
      break;
    }
    *done += b - a;
  }
  meta_cache_mark_dirty (img->l2_cache, t);
  meta_cache_put (img->l2_cache, t);
  if (r == 0)
    r = checkpoint_if_needed (img);
  return r == -1 ? write_failed (img) : 0;
}

/* Whole granules [offset, offset + count), one L2 table at a time; the
 * data writes of redone parts run outside the lock.
 */
static int
zero_granules (struct qcow2_image *img, uint64_t count, uint64_t offset,
               enum zero_mode mode, unsigned flags)
{
  while (count > 0) {
    uint64_t cluster = offset >> img->cluster_bits;
    uint64_t table_end = ((cluster >> img->l2_bits) + 1) << (img->l2_bits + img->cluster_bits);
    uint64_t done, redo_len;

    if (zero_in_table (img, offset, MIN (count, table_end - offset), mode,
                       &done, &redo_len) == -1)
      return -1;
    if (redo_len) {
      if (mode != DISCARD &&
          write_zeroes (img, redo_len, offset + done, flags) == -1)
        return -1;
      done += redo_len;
    }
    offset += done;
    count -= done;
  }
  return 0;
}

static int
zero_or_discard (struct qcow2_image *img, uint64_t count, uint64_t offset,
                 enum zero_mode mode, unsigned flags)
{
  const uint64_t g = granule (img);
  uint64_t first = ROUND_UP (offset, g);
  uint64_t last = ROUND_DOWN (offset + count, g);

  /* A raw external data file must keep holding the guest's bytes. */
  if (img->hdr.autoclear & AUTOCLEAR_DATA_FILE_RAW)
    return mode == DISCARD ? 0 : write_zeroes (img, count, offset, flags);

  /* Version 2 cannot say "zero" except by deallocating, which shows the
   * backing file through: then zeroes must be written as data.
   */
  if (mode != DISCARD && img->hdr.version < 3 &&
      (mode == ZERO_KEEP || img->backing != NULL))
    return write_zeroes (img, count, offset, flags);

  if (first >= last) {          /* inside one granule */
    return mode == DISCARD ? 0 : write_zeroes (img, count, offset, flags);
  }
  if (mode != DISCARD) {
    if (first > offset && write_zeroes (img, first - offset, offset, flags) == -1)
      return -1;
    if (offset + count > last &&
        write_zeroes (img, offset + count - last, last, flags) == -1)
      return -1;
  }
  return zero_granules (img, last - first, first, mode, flags);
}

/* Refused after a sticky error even where nothing would change. */
static int
write_allowed (struct qcow2_image *img)
{
  SCOPED_RDLOCK (&img->meta_lock);
  return write_check_locked (img);
}

int
qcow2_zero (struct qcow2_image *img, uint64_t count, uint64_t offset,
            unsigned flags)
{
  if (write_allowed (img) == -1 ||
      zero_or_discard (img, count, offset,
                       flags & QCOW2_MAY_TRIM ? ZERO_UNMAP : ZERO_KEEP,
                       flags) == -1)
    return -1;
  return flags & QCOW2_FUA ? qcow2_flush (img) : 0;
}

int
qcow2_trim (struct qcow2_image *img, uint64_t count, uint64_t offset,
            unsigned flags)
{
  if (write_allowed (img) == -1 ||
      zero_or_discard (img, count, offset, DISCARD, flags) == -1)
    return -1;
  return flags & QCOW2_FUA ? qcow2_flush (img) : 0;
}
