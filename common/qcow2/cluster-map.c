/* Guest offset -> what is stored there ("Cluster mapping" and
 * "Extended L2 Entries" in qcow2.txt).
 *
 * cluster_map describes the longest run starting at a guest offset that
 * has one kind and, for data, one contiguous host range, so that a read
 * spanning many clusters costs one system call per host extent.  Every
 * L1 and L2 entry is validated here, where it is decoded.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "cleanup.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "rounding.h"

int64_t
l1_entry_check (struct qcow2_image *img, uint64_t e, uint32_t index)
{
  uint64_t off = e & L1E_OFFSET_MASK;

  if (e & L1E_RESERVED_MASK)
    return image_corrupt (img, "L1 entry %" PRIu32 " (%#" PRIx64
                          ") has reserved bits set", index, e);
  if (off == 0)
    return 0;
  if (!IS_ALIGNED (off, img->cluster_size))
    return image_corrupt (img, "L2 table offset %#" PRIx64 " in L1 entry %"
                          PRIu32 " is not cluster-aligned", off, index);
  if (!range_within (off, img->cluster_size, img->file_size))
    return image_corrupt (img, "L2 table offset %#" PRIx64 " in L1 entry %"
                          PRIu32 " is beyond the end of the file", off, index);
  return off;
}

int64_t
l1_entry_l2_offset (struct qcow2_image *img, uint32_t index)
{
  return l1_entry_check (img, img->l1[index], index);
}

int
l2_decode (struct qcow2_image *img, const struct meta_table *t,
              uint64_t index, struct l2_entry *d)
{
  const unsigned char *p = t->data + index * img->l2_entry_size;
  uint64_t e = load_be64 (p);
  uint64_t bitmap = img->extended_l2 ? load_be64 (p + 8) : 0;
  uint64_t off = e & L2E_OFFSET_MASK;
  bool has_cluster;

  d->raw = e;
  d->alloc_bits = bitmap & SC_ALLOC_MASK;
  d->zero_bits = bitmap >> SC_ZERO_SHIFT;
  d->host = 0;
  d->has_host = false;

  if (e & L2E_COMPRESSED) {
    if (bitmap)
      return image_corrupt (img, "compressed L2 entry %#" PRIx64 " at %#"
                            PRIx64 " has a subcluster bitmap", e,
                            t->offset + index * img->l2_entry_size);
    d->kind = MAP_COMPRESSED;
    return 0;
  }
  if (e & L2E_RESERVED_MASK)
    return image_corrupt (img, "L2 entry %#" PRIx64 " at %#" PRIx64
                          " has reserved bits set", e,
                          t->offset + index * img->l2_entry_size);

  /* With an external data file, offset 0 with COPIED is a real cluster. */
  has_cluster = off != 0 || (img->data != img->file && (e & ENTRY_COPIED));
  if (has_cluster) {
    if (!IS_ALIGNED (off, img->cluster_size))
      return image_corrupt (img, "data cluster offset %#" PRIx64 " in L2 "
                            "entry at %#" PRIx64 " is not cluster-aligned",
                            off, t->offset + index * img->l2_entry_size);
    if (img->data == img->file && off >= img->file_size)
      return image_corrupt (img, "data cluster offset %#" PRIx64 " in L2 "
                            "entry at %#" PRIx64 " is beyond the end of the "
                            "file", off, t->offset + index * img->l2_entry_size);
    d->host = off;
  }
  d->has_host = has_cluster;

  if (img->extended_l2) {
    if (d->alloc_bits & d->zero_bits)
      return image_corrupt (img, "L2 entry at %#" PRIx64 " has subclusters "
                            "marked both allocated and zero (bitmap %#"
                            PRIx64 ")", t->offset + index * img->l2_entry_size,
                            bitmap);
    if (!has_cluster && d->alloc_bits)
      return image_corrupt (img, "L2 entry at %#" PRIx64 " has allocated "
                            "subclusters but no cluster (bitmap %#" PRIx64 ")",
                            t->offset + index * img->l2_entry_size, bitmap);
    d->kind = has_cluster ? MAP_DATA : MAP_UNALLOCATED;
  }
  else if (e & L2E_ZERO)
    d->kind = MAP_ZERO;
  else
    d->kind = has_cluster ? MAP_DATA : MAP_UNALLOCATED;
  return 0;
}

/* An all-zero entry (and bitmap) is an unallocated cluster whatever the
 * image's features: no offset, no flags, no subclusters.  Most entries
 * of a sparse table are, and block status walks whole tables.
 */
static bool
l2_entry_is_zero (const struct qcow2_image *img, const struct meta_table *t,
                  uint64_t index)
{
  const unsigned char *p = t->data + index * img->l2_entry_size;

  return load_be64 (p) == 0 && (!img->extended_l2 || load_be64 (p + 8) == 0);
}

/* The kind of subcluster sc of a decoded entry. */
static enum map_kind
subcluster_kind (const struct qcow2_image *img, const struct l2_entry *d,
                 unsigned sc)
{
  if (!img->extended_l2 || d->kind == MAP_COMPRESSED)
    return d->kind;
  if (d->zero_bits & (UINT32_C (1) << sc))
    return MAP_ZERO;
  if (d->alloc_bits & (UINT32_C (1) << sc))
    return MAP_DATA;
  return MAP_UNALLOCATED;
}

/* The run that starts at offset, from the pinned L2 table t: offset
 * and max_len stay inside the table.
 */
static int
map_in_table (struct qcow2_image *img, const struct meta_table *t,
              uint64_t offset, uint64_t max_len, struct mapping *m)
{
  const uint64_t granule = UINT64_C (1) << img->subcluster_bits;
  const unsigned sc_per_cluster = 1u << (img->cluster_bits - img->subcluster_bits);
  uint64_t index = (offset >> img->cluster_bits) & (l2_entries_per_table (img) - 1);
  unsigned sc = (offset >> img->subcluster_bits) & (sc_per_cluster - 1);
  uint64_t pos, expect_host = 0;
  struct l2_entry d;

  if (l2_decode (img, t, index, &d) == -1)
    return -1;
  m->kind = subcluster_kind (img, &d, sc);
  if (m->kind == MAP_COMPRESSED) {
    m->descriptor = d.raw;
    m->cluster_offset = ROUND_DOWN (offset, img->cluster_size);
    m->length = MIN (max_len, m->cluster_offset + img->cluster_size - offset);
    return 0;
  }
  if (m->kind == MAP_DATA) {
    m->host_offset = d.host + (offset & (img->cluster_size - 1));
    expect_host = d.host;
  }

  /* Extend the run one subcluster (or cluster) at a time. */
  pos = ROUND_DOWN (offset, granule) + granule;
  while (pos < offset + max_len) {
    sc++;
    if (sc == sc_per_cluster) {
      sc = 0;
      index++;
      if (m->kind == MAP_UNALLOCATED && l2_entry_is_zero (img, t, index)) {
        pos += img->cluster_size;       /* the whole cluster at once */
        sc = sc_per_cluster - 1;
        continue;
      }
      if (l2_decode (img, t, index, &d) == -1)
        return -1;
      if (m->kind == MAP_DATA && d.host != expect_host + img->cluster_size)
        break;
      expect_host = d.host;
    }
    if (subcluster_kind (img, &d, sc) != m->kind)
      break;
    pos += granule;
  }
  m->length = MIN (pos, offset + max_len) - offset;
  return 0;
}

int
cluster_map (struct qcow2_image *img, uint64_t offset, uint64_t max_len,
             struct mapping *m)
{
  const unsigned table_shift = img->l2_bits + img->cluster_bits;
  const uint64_t l1_index = offset >> table_shift;
  uint64_t table_end = (l1_index + 1) << table_shift;
  struct meta_table *t;
  int64_t l2_offset;
  int r;

  if (img->qcow1)
    return qcow1_cluster_map (img, offset, max_len, m);

  max_len = MIN (max_len, table_end - offset);
  m->length = max_len;
  m->kind = MAP_UNALLOCATED;
  if (l1_index >= img->l1_size)
    return 0;
  l2_offset = l1_entry_l2_offset (img, l1_index);
  if (l2_offset <= 0)
    return l2_offset;           /* -1 error, or 0: no L2 table */

  if (meta_cache_get (img->l2_cache, img->file, l2_offset, &t) == -1)
    return -1;
  r = map_in_table (img, t, offset, max_len, m);
  meta_cache_put (img->l2_cache, t);
  return r;
}

int
cluster_map_shared (struct qcow2_image *img, uint64_t offset,
                    uint64_t max_len, struct mapping *m)
{
  SCOPED_RDLOCK (&img->meta_lock);
  return cluster_map (img, offset, max_len, m);
}
