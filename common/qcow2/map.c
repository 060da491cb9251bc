/* Where each guest range of a backing chain is stored (qcow2-info.h),
 * in the terms of qemu-img map: a range is taken from the first layer
 * from the top that has data or zeroes for it.  What the layer knows of
 * a range follows "Cluster mapping" and "Extended L2 Entries" in
 * qcow2.txt:
 *
 *   - a data cluster (or subcluster) is data at its host offset, unless
 *     the image is encrypted (stored bytes are not the guest's) or the
 *     cluster is compressed (no offset of its own);
 *   - a zero cluster is zeroes, at its host offset if it keeps one;
 *   - an unallocated cluster is what the layer below has, zeroes past
 *     the end of that layer, and zeroes in the last layer (at the host
 *     offset of the cluster when only the subcluster is unallocated);
 *   - a raw file below is data or zeroes (a hole), at the same offset.
 *
 * As QEMU, only in a "metadata preallocated" image (prealloc.c) are
 * data clusters asked whether they are holes in the file.
 */
#include <config.h>

#include "cleanup.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "qcow2-info.h"

static bool
is_encrypted (const struct qcow2_image *img)
{
  return img->hdr.crypt_method != CRYPT_NONE;
}

/* A hole in the data file reads as zeroes (preallocated images). */
static int
data_hole (struct qcow2_image *img, struct qcow2_map_extent *e)
{
  bool hole;
  uint64_t n;

  if (io_extent (img->data, e->offset, e->length, &hole, &n) == -1)
    return -1;
  if (n > 0 && n < e->length)
    e->length = n;
  e->zero = hole;
  return 0;
}

/* The L2 entry of the cluster at guest offset (a zero cluster). */
static int
entry_at (struct qcow2_image *img, uint64_t offset, struct l2_entry *d)
{
  const uint64_t l1_index = offset >> (img->l2_bits + img->cluster_bits);
  struct meta_table *t;
  int64_t l2_offset;
  int r;

  SCOPED_RDLOCK (&img->meta_lock);
  l2_offset = l1_entry_l2_offset (img, l1_index);
  if (l2_offset <= 0) {
    d->has_host = false;
    return l2_offset;
  }
  if (meta_cache_get (img->l2_cache, img->file, l2_offset, &t) == -1)
    return -1;
  r = l2_decode (img, t, (offset >> img->cluster_bits)
                 & (l2_entries_per_table (img) - 1), d);
  meta_cache_put (img->l2_cache, t);
  return r;
}

/* A zero cluster keeps its host offset where it has one, and so does
 * an unallocated subcluster of an allocated cluster: one cluster at a
 * time, since such offsets need not follow each other.
 */
static int
kept_offset (struct qcow2_image *img, struct qcow2_map_extent *e)
{
  const uint64_t in_cluster = e->start & (img->cluster_size - 1);
  struct l2_entry d;

  if (img->qcow1)
    return 0;
  e->length = MIN (e->length, img->cluster_size - in_cluster);
  if (entry_at (img, e->start, &d) == -1)
    return -1;
  if (d.has_host && !is_encrypted (img)) {
    e->has_offset = true;
    e->offset = d.host + in_cluster;
  }
  return 0;
}

static int
raw_extent (const struct backing *b, struct qcow2_map_extent *e)
{
  bool hole;
  uint64_t n;

  if (io_extent (b->raw, e->start, e->length, &hole, &n) == -1)
    return -1;
  if (n > 0 && n < e->length)
    e->length = n;
  e->present = true;
  e->zero = hole;
  e->data = !hole;
  e->has_offset = true;
  e->offset = e->start;
  e->file = b->raw->name;
  return 0;
}

static int
map_layer (struct qcow2_image *img, unsigned depth, uint64_t start,
           uint64_t length, struct qcow2_map_extent *e)
{
  const struct backing *b = img->backing;
  struct mapping m;

  if (cluster_map_shared (img, start, length, &m) == -1)
    return -1;
  *e = (struct qcow2_map_extent) {
    .start = start, .length = m.length, .depth = depth,
    .file = img->data->name,
  };
  switch (m.kind) {
  case MAP_DATA:
    e->present = e->data = true;
    if (is_encrypted (img))
      return 0;
    e->has_offset = true;
    e->offset = m.host_offset;
    return img->metadata_preallocated ? data_hole (img, e) : 0;
  case MAP_COMPRESSED:
    e->present = e->data = true;
    return 0;
  case MAP_ZERO:
    e->present = e->zero = true;
    return kept_offset (img, e);
  case MAP_UNALLOCATED:
    break;
  }
  e->zero = true;
  if (b == NULL || start >= b->size)
    return img->extended_l2 ? kept_offset (img, e) : 0;
  e->length = MIN (e->length, b->size - start);
  e->depth = depth + 1;
  if (b->qcow2)
    return map_layer (b->qcow2, depth + 1, start, e->length, e);
  return raw_extent (b, e);
}

int
qcow2_map_extent (struct qcow2_image *img, uint64_t start, uint64_t length,
                  struct qcow2_map_extent *e)
{
  return map_layer (img, 0, start, length, e);
}
