/* QEMU's "overlap check": a cluster about to hold guest data or new
 * metadata, written in place, or released, must not be one the image
 * uses for metadata.  A hit means the refcounts or the L2 entries lie:
 * the image is corrupt.
 *
 * Every check goes to an index of the host clusters that hold metadata
 * (metadata.c lists them; QEMU's default "cached" set: everything but
 * the snapshots' L2 tables), filled when writing starts and kept up to
 * date as L2 tables, refcount blocks and refcount tables are allocated,
 * moved and dropped.  A check costs one hash probe per cluster, however
 * large the image and its tables are.
 *
 * The index is a hash set of cluster indices with open addressing
 * (linear probing, deletion by shifting back), each with the number of
 * references to it: a hostile image may name one L2 table from many L1
 * entries, and the table stays metadata until the last one is gone.
 * A count that reaches its maximum stays there (the cluster is then
 * metadata for as long as the image is open).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "diag.h"
#include "internal.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

/* A slot: (cluster index + 1) << COUNT_BITS | references; 0 = empty.
 * Host offsets are below 2^56, so cluster indices fit in 47 bits.
 */
#define COUNT_BITS   8
#define COUNT_MAX    ((UINT64_C (1) << COUNT_BITS) - 1)
#define MIN_SLOTS    64

struct overlap_index {
  uint64_t *slots;
  uint64_t nr_slots;            /* a power of 2 */
  uint64_t nr_used;
};

static uint64_t
slot_key (uint64_t s)
{
  return s >> COUNT_BITS;
}

static uint64_t
home_slot (const struct overlap_index *x, uint64_t key)
{
  /* Fibonacci hashing: neighbouring clusters spread over the table. */
  return (key * UINT64_C (0x9e3779b97f4a7c15)) >> (64 - __builtin_ctzll (x->nr_slots));
}

/* The slot holding key, or the empty slot where it would go. */
static uint64_t
find_slot (const struct overlap_index *x, uint64_t key)
{
  uint64_t mask = x->nr_slots - 1;
  uint64_t i = home_slot (x, key);

  while (x->slots[i] && slot_key (x->slots[i]) != key)
    i = (i + 1) & mask;
  return i;
}

static int
resize (struct overlap_index *x, uint64_t nr_slots)
{
  uint64_t *old = x->slots, old_nr = x->nr_slots;

  x->slots = calloc (nr_slots, sizeof *x->slots);
  if (x->slots == NULL) {
    diag_error ("calloc: %m");
    x->slots = old;
    return -1;
  }
  x->nr_slots = nr_slots;
  for (uint64_t i = 0; i < old_nr; i++)
    if (old[i])
      x->slots[find_slot (x, slot_key (old[i]))] = old[i];
  free (old);
  return 0;
}

static int
add_cluster (struct overlap_index *x, uint64_t cluster)
{
  uint64_t key = cluster + 1, i;

  /* At most half full: probes stay short. */
  if ((x->nr_used + 1) * 2 > x->nr_slots &&
      resize (x, x->nr_slots * 2) == -1)
    return -1;
  i = find_slot (x, key);
  if (x->slots[i] == 0) {
    x->slots[i] = key << COUNT_BITS;
    x->nr_used++;
  }
  if ((x->slots[i] & COUNT_MAX) < COUNT_MAX)
    x->slots[i]++;
  return 0;
}

/* Empty slot i, moving later entries of its probe run back into it. */
static void
delete_slot (struct overlap_index *x, uint64_t i)
{
  uint64_t mask = x->nr_slots - 1, j = i;

  for (;;) {
    x->slots[i] = 0;
    for (;;) {
      uint64_t home;

      j = (j + 1) & mask;
      if (x->slots[j] == 0)
        return;
      home = home_slot (x, slot_key (x->slots[j]));
      /* Entry j may move to i unless its home lies in (i, j]. */
      if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
        break;
    }
    x->slots[i] = x->slots[j];
    i = j;
  }
}

static void
remove_cluster (struct overlap_index *x, uint64_t cluster)
{
  uint64_t i = find_slot (x, cluster + 1);
  uint64_t n = x->slots[i] & COUNT_MAX;

  if (x->slots[i] == 0 || n == COUNT_MAX)
    return;
  if (n > 1)
    x->slots[i]--;
  else {
    delete_slot (x, i);
    x->nr_used--;
  }
}

static bool
has_cluster (const struct overlap_index *x, uint64_t cluster)
{
  return x->slots[find_slot (x, cluster + 1)] != 0;
}

/* The clusters [*first, *last] touched by a byte range. */
static bool
cluster_span (const struct qcow2_image *img, uint64_t offset, uint64_t bytes,
              uint64_t *first, uint64_t *last)
{
  if (bytes == 0 || offset > MAX_HOST_OFFSET)
    return false;
  *first = offset >> img->cluster_bits;
  *last = (offset + MIN (bytes, MAX_HOST_OFFSET - offset + 1) - 1)
    >> img->cluster_bits;
  return true;
}

int
overlap_add (struct qcow2_image *img, uint64_t offset, uint64_t bytes)
{
  uint64_t first, last;

  if (!cluster_span (img, offset, bytes, &first, &last))
    return 0;
  for (uint64_t c = first; c <= last; c++)
    if (add_cluster (img->w->overlap, c) == -1)
      return -1;
  return 0;
}

void
overlap_remove (struct qcow2_image *img, uint64_t offset, uint64_t bytes)
{
  uint64_t first, last;

  if (!cluster_span (img, offset, bytes, &first, &last))
    return;
  for (uint64_t c = first; c <= last; c++)
    remove_cluster (img->w->overlap, c);
}

/* A range from the image's tables.  Only the part inside the file is
 * indexed, and at least its first cluster (an L2 table named past the
 * end must not come to life as data when the file grows), and no more
 * than the largest table the format allows (the snapshot table's
 * 64 MiB): the encryption header's length is the image's to choose.
 */
#define MAX_INDEXED_RANGE (UINT64_C (64) * 1024 * 1024)

static int
add_range (struct qcow2_image *img, enum metadata_kind kind, uint64_t offset,
           uint64_t bytes, void *opaque)
{
  uint64_t end = ROUND_UP (img->file_size, img->cluster_size);

  bytes = MIN (bytes, offset < end ? end - offset : img->cluster_size);
  bytes = MIN (bytes, MAX_INDEXED_RANGE);
  return overlap_add (img, offset, bytes);
}

int
overlap_index_build (struct qcow2_image *img)
{
  struct overlap_index *x = calloc (1, sizeof *x);

  if (x == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  img->w->overlap = x;
  if (resize (x, MIN_SLOTS) == -1)
    return -1;
  return metadata_for_each (img, MD_CACHED, add_range, NULL);
}

uint64_t
overlap_end (const struct qcow2_image *img)
{
  const struct overlap_index *x = img->w->overlap;
  uint64_t end = 0;

  /* Keys are cluster index + 1: the largest is the end. */
  for (uint64_t i = 0; i < x->nr_slots; i++)
    end = MAX (end, slot_key (x->slots[i]));
  return end;
}

void
overlap_index_free (struct qcow2_image *img)
{
  if (img->w->overlap) {
    free (img->w->overlap->slots);
    free (img->w->overlap);
    img->w->overlap = NULL;
  }
}

/* What a hit overlaps, for the message (only on the way to an error). */
struct culprit {
  uint64_t cluster;
  enum metadata_kind kind;
  uint64_t offset;
};

static int
find_culprit (struct qcow2_image *img, enum metadata_kind kind,
              uint64_t offset, uint64_t bytes, void *opaque)
{
  struct culprit *c = opaque;
  uint64_t first, last;

  if (!cluster_span (img, offset, bytes, &first, &last) ||
      c->cluster < first || c->cluster > last)
    return 0;
  c->kind = kind;
  c->offset = offset;
  return 1;
}

int
check_no_overlap (struct qcow2_image *img, uint64_t offset, uint64_t bytes)
{
  const struct overlap_index *x = img->w->overlap;
  uint64_t first, last;
  struct culprit c;

  if (!cluster_span (img, offset, bytes, &first, &last))
    return 0;
  for (c.cluster = first; c.cluster <= last; c.cluster++)
    if (has_cluster (x, c.cluster))
      break;
  if (c.cluster > last)
    return 0;
  if (metadata_for_each (img, MD_CACHED, find_culprit, &c) == 1)
    return write_corrupt (img, "write to %#" PRIx64 " would overlap the %s "
                          "at %#" PRIx64, offset, metadata_kind_name (c.kind),
                          c.offset);
  /* Still named only by a reference that is about to go. */
  return write_corrupt (img, "write to %#" PRIx64 " would overlap metadata "
                        "at %#" PRIx64, offset, c.cluster << img->cluster_bits);
}
