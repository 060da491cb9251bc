/* qemu-img check for qcow2 (qcow2-check.h): count every reference to
 * every host cluster from the metadata ("Host cluster management",
 * "Cluster mapping", "Snapshots" in qcow2.txt), compare the counts with
 * the refcounts stored, and check the COPIED flags, which say "refcount
 * is exactly one" ("Cluster mapping": bit 63 of L1 and L2 entries).
 *
 * Classification, as qemu-img's:
 *   - a refcount below the references: corruption (a write could reuse
 *     a cluster still in use);
 *   - a refcount above the references: a leak (space wasted only);
 *   - a reference past the end of the file (by a cluster or more), a
 *     misaligned table or entry, reserved bits, a refcount block whose
 *     own refcount is not 1, a wrong COPIED flag: corruption.
 *
 * The image is read as it is on disk, through the file, never through
 * the engine's caches: the check must see what a crash left.  Reads
 * past the end of the file read zeroes, as in QEMU.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "check.h"
#include "qcow2-check.h"
#include "refcount-format.h"
#include "rounding.h"

static int
read_zero_padded (struct check *c, void *buf, uint64_t count, uint64_t offset)
{
  if (io_pread_zero_padded (c->img->file, buf, count, offset) == -1) {
    c->r->check_errors++;
    return -1;
  }
  return 0;
}

static int
grow_counts (struct check *c, uint64_t nr)
{
  uint64_t *n = realloc (c->counts, nr * sizeof *n);

  if (n == NULL) {
    diag_error ("realloc: %m");
    c->r->check_errors++;
    return -1;
  }
  memset (n + c->nr_counts, 0, (nr - c->nr_counts) * sizeof *n);
  c->counts = n;
  c->nr_counts = nr;
  return 0;
}

/* One reference to every cluster of [offset, offset + bytes).  The last
 * cluster of a file may be short, so a range ending less than a cluster
 * past the end is allowed.
 */
static int
reference (struct check *c, uint64_t offset, uint64_t bytes)
{
  const struct qcow2_image *img = c->img;
  uint64_t first, last;

  if (bytes == 0)
    return 0;
  if (offset + bytes > img->file_size &&
      offset + bytes - img->file_size >= img->cluster_size) {
    diag_error ("ERROR: counting reference for region exceeding the end of "
                "the file by one cluster or more: offset %#" PRIx64
                " size %#" PRIx64, offset, bytes);
    c->r->corruptions++;
    return 0;
  }
  first = offset >> img->cluster_bits;
  last = (offset + bytes - 1) >> img->cluster_bits;
  if (last >= c->nr_counts && grow_counts (c, last + 1) == -1)
    return -1;
  for (uint64_t i = first; i <= last; i++) {
    if (c->counts[i] == c->max) {
      diag_error ("ERROR: overflow cluster offset=%#" PRIx64,
                  i << img->cluster_bits);
      c->r->corruptions++;
      continue;
    }
    c->counts[i]++;
  }
  return 0;
}

static void
corruption (struct check *c)
{
  c->r->corruptions++;
}

enum entry_type
entry_type (const struct check *c, uint64_t e)
{
  uint64_t off = e & L2E_OFFSET_MASK;

  if (e & L2E_COMPRESSED)
    return E_COMPRESSED;
  if ((e & L2E_ZERO) && !c->img->extended_l2)
    return off ? E_ZERO_ALLOC : E_ZERO_PLAIN;
  if (off == 0)
    return c->data_file && (e & ENTRY_COPIED) ? E_NORMAL : E_UNALLOCATED;
  return E_NORMAL;
}

static int
check_compressed (struct check *c, uint64_t e, uint64_t bitmap, bool active)
{
  const unsigned bits = c->img->cluster_bits;

  if (e & ENTRY_COPIED) {
    diag_error ("ERROR: coffset=%#" PRIx64 ": copied flag must never be set "
                "for compressed clusters", compressed_host_offset (e, bits));
    e &= ~ENTRY_COPIED;
    corruption (c);
  }
  if (c->data_file || bitmap) {
    diag_error ("ERROR compressed cluster with %s, entry=%#" PRIx64,
                c->data_file ? "data file" : "non-zero subcluster allocation "
                "bitmap", e);
    corruption (c);
    return 0;
  }
  if (active) {
    c->r->allocated_clusters++;
    c->r->compressed_clusters++;
    /* Compressed clusters share sectors: always fragmented. */
    c->r->fragmented_clusters++;
  }
  return reference (c, compressed_host_offset (e, bits),
                    compressed_length (e, bits));
}

static int
check_allocated (struct check *c, uint64_t e, enum entry_type t, bool active,
                 uint64_t *next)
{
  const uint64_t off = e & L2E_OFFSET_MASK;

  if (active) {
    c->r->allocated_clusters++;
    if (*next && off != *next)
      c->r->fragmented_clusters++;
    *next = off + c->img->cluster_size;
  }
  if (!IS_ALIGNED (off, c->img->cluster_size)) {
    diag_error ("ERROR offset=%" PRIx64 ": %s cluster is not properly "
                "aligned; L2 entry corrupted", off,
                t == E_ZERO_ALLOC ? "Preallocated" : "Data");
    corruption (c);
  }
  if (c->data_file)
    return 0;
  return reference (c, off, c->img->cluster_size);
}

static int
check_l2 (struct check *c, uint64_t l2_offset, bool active)
{
  const struct qcow2_image *img = c->img;
  uint64_t next = 0;

  if (read_zero_padded (c, c->l2, img->cluster_size, l2_offset) == -1) {
    diag_error ("ERROR: I/O error in check_refcounts_l2");
    return -1;
  }
  for (uint64_t i = 0; i < l2_entries_per_table (img); i++) {
    const unsigned char *p = c->l2 + i * img->l2_entry_size;
    uint64_t e = load_be64 (p);
    uint64_t bitmap = img->extended_l2 ? load_be64 (p + 8) : 0;
    enum entry_type t = entry_type (c, e);
    int r = 0;

    if (t != E_COMPRESSED && (e & L2E_RESERVED_MASK)) {
      diag_error ("ERROR found l2 entry with reserved bits set: %" PRIx64, e);
      corruption (c);
    }
    switch (t) {
    case E_COMPRESSED:
      r = check_compressed (c, e, bitmap, active);
      break;
    case E_NORMAL:
    case E_ZERO_ALLOC:
      r = check_allocated (c, e, t, active, &next);
      break;
    case E_ZERO_PLAIN:
      break;
    case E_UNALLOCATED:
      if (bitmap & SC_ALLOC_MASK) {
        diag_error ("ERROR: L2 entry at %#" PRIx64 ": unallocated cluster "
                    "has non-zero subcluster allocation bitmap",
                    l2_offset + i * img->l2_entry_size);
        corruption (c);
      }
      break;
    }
    if (r == -1)
      return -1;
  }
  return 0;
}

/* An L1 table and everything it names.  active: the guest's disk, whose
 * clusters are counted for the allocation figures.
 */
static int
check_l1 (struct check *c, uint64_t l1_offset, uint32_t l1_size, bool active)
{
  const struct qcow2_image *img = c->img;
  uint64_t *l1;
  int r = 0;

  if (l1_size == 0)
    return 0;
  if (reference (c, l1_offset, (uint64_t) l1_size * 8) == -1)
    return -1;
  l1 = malloc ((uint64_t) l1_size * 8);
  if (l1 == NULL) {
    diag_error ("malloc: %m");
    c->r->check_errors++;
    return -1;
  }
  if (read_zero_padded (c, l1, (uint64_t) l1_size * 8, l1_offset) == -1) {
    diag_error ("ERROR: I/O error in check_refcounts_l1");
    free (l1);
    return -1;
  }
  for (uint32_t i = 0; i < l1_size && r == 0; i++) {
    uint64_t e = load_be64 (&l1[i]);
    uint64_t l2_offset = e & L1E_OFFSET_MASK;

    if (e == 0)
      continue;
    if (e & L1E_RESERVED_MASK) {
      diag_error ("ERROR found L1 entry with reserved bits set: %" PRIx64, e);
      corruption (c);
    }
    r = reference (c, l2_offset, img->cluster_size);
    if (r == 0 && !IS_ALIGNED (l2_offset, img->cluster_size)) {
      diag_error ("ERROR l2_offset=%" PRIx64 ": Table is not cluster "
                  "aligned; L1 entry corrupted", l2_offset);
      corruption (c);
    }
    if (r == 0)
      r = check_l2 (c, l2_offset, active);
  }
  free (l1);
  return r;
}

static int
check_snapshots (struct check *c)
{
  const struct qcow2_image *img = c->img;
  const uint32_t n = img->snapshots ? img->hdr.nb_snapshots : 0;

  if (c->data_file && n) {
    diag_error ("ERROR %" PRIu32 " snapshots in image with data file", n);
    corruption (c);
  }
  for (uint32_t i = 0; i < n; i++) {
    const struct qcow2_snapshot_info *sn = &img->snapshots[i];

    if (!IS_ALIGNED (sn->l1_offset, img->cluster_size)) {
      diag_error ("ERROR snapshot %s (%s) l1_offset=%#" PRIx64 ": L1 table "
                  "is not cluster aligned; snapshot table entry corrupted",
                  sn->id, sn->name, sn->l1_offset);
      corruption (c);
      continue;
    }
    if ((uint64_t) sn->l1_size * 8 > MAX_L1_BYTES) {
      diag_error ("ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": L1 table is "
                  "too large; snapshot table entry corrupted",
                  sn->id, sn->name, sn->l1_size);
      corruption (c);
      continue;
    }
    if (check_l1 (c, sn->l1_offset, sn->l1_size, false) == -1)
      return -1;
  }
  return reference (c, img->hdr.snapshots_offset, img->snapshot_table_bytes);
}

static int
load_reftable (struct check *c)
{
  const struct qcow2_header *h = &c->img->hdr;
  uint64_t bytes = (uint64_t) h->refcount_table_clusters << c->img->cluster_bits;

  c->reftable_entries = bytes / 8;
  c->reftable = malloc (bytes);
  if (c->reftable == NULL) {
    diag_error ("malloc: %m");
    c->r->check_errors++;
    return -1;
  }
  if (read_zero_padded (c, c->reftable, bytes, h->refcount_table_offset) == -1)
    return -1;
  for (uint64_t i = 0; i < c->reftable_entries; i++)
    c->reftable[i] = load_be64 (&c->reftable[i]);
  return reference (c, h->refcount_table_offset, bytes);
}

/* Each refcount block is referenced once, by the refcount table. */
static int
check_refblocks (struct check *c)
{
  const struct qcow2_image *img = c->img;

  for (uint64_t i = 0; i < c->reftable_entries; i++) {
    uint64_t e = c->reftable[i], off = e & REFT_OFFSET_MASK;

    if (e & REFT_RESERVED_MASK) {
      diag_error ("ERROR refcount table entry %" PRIu64 " has reserved bits "
                  "set", i);
      corruption (c);
      c->rebuild_refblocks = true;
      continue;
    }
    if (!IS_ALIGNED (off, img->cluster_size)) {
      diag_error ("ERROR refcount block %" PRIu64 " is not cluster aligned; "
                  "refcount table entry corrupted", i);
      corruption (c);
      c->rebuild_refblocks = true;
      continue;
    }
    if ((off >> img->cluster_bits) >= c->file_clusters) {
      diag_error ("ERROR refcount block %" PRIu64 " is outside image", i);
      corruption (c);
      c->rebuild_refblocks = true;
      continue;
    }
    if (off == 0)
      continue;
    if (reference (c, off, img->cluster_size) == -1)
      return -1;
    if (c->counts[off >> img->cluster_bits] != 1) {
      diag_error ("ERROR refcount block %" PRIu64 " refcount=%" PRIu64, i,
                  c->counts[off >> img->cluster_bits]);
      corruption (c);
      c->rebuild_refblocks = true;
    }
  }
  return 0;
}

int
stored_refcount (struct check *c, uint64_t cluster, uint64_t *value)
{
  const struct qcow2_image *img = c->img;
  uint64_t index = cluster >> c->rb_bits, off;

  *value = 0;
  if (index >= c->reftable_entries)
    return 0;
  off = c->reftable[index] & REFT_OFFSET_MASK;
  if (off == 0)
    return 0;
  if (!IS_ALIGNED (off, img->cluster_size)) {
    errno = EIO;
    return -1;
  }
  if (off != c->block_offset) {
    if (read_zero_padded (c, c->block, img->cluster_size, off) == -1)
      return -1;
    c->block_offset = off;
  }
  *value = refblock_get (c->block, cluster & ((UINT64_C (1) << c->rb_bits) - 1),
                         img->hdr.refcount_order);
  return 0;
}

static int
compare_refcounts (struct check *c, uint64_t *highest)
{
  const uint64_t n = MAX (c->nr_counts, c->file_clusters);

  for (uint64_t i = 0; i < n; i++) {
    uint64_t stored, counted = i < c->nr_counts ? c->counts[i] : 0;

    if (stored_refcount (c, i, &stored) == -1) {
      diag_error ("Can't get refcount for cluster %" PRIu64 ": %m", i);
      c->r->check_errors++;
      continue;
    }
    if (stored > 0 || counted > 0)
      *highest = i;
    if (stored == counted)
      continue;
    if (stored == 0)
      c->unrefcounted = true;
    diag_error ("%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%"
                PRIu64, stored < counted ? "ERROR" : "Leaked", i, stored,
                counted);
    if (stored < counted)
      c->r->corruptions++;
    else
      c->r->leaks++;
  }
  return 0;
}

/* COPIED must be set exactly where the refcount is 1 (active tables). */
static int
check_copied (struct check *c)
{
  const struct qcow2_image *img = c->img;

  for (uint32_t i = 0; i < img->l1_size; i++) {
    uint64_t l1e = img->l1[i], l2_offset = l1e & L1E_OFFSET_MASK, rc;

    if (l2_offset == 0)
      continue;
    if (stored_refcount (c, l2_offset >> img->cluster_bits, &rc) == 0 &&
        (rc == 1) != !!(l1e & ENTRY_COPIED)) {
      diag_error ("ERROR OFLAG_COPIED L2 cluster: l1_index=%" PRIu32
                  " l1_entry=%" PRIx64 " refcount=%" PRIu64, i, l1e, rc);
      corruption (c);
      c->copied_corruptions++;
    }
    if (read_zero_padded (c, c->l2, img->cluster_size, l2_offset) == -1) {
      diag_error ("ERROR: Could not read L2 table");
      return -1;
    }
    for (uint64_t j = 0; j < l2_entries_per_table (img); j++) {
      uint64_t e = load_be64 (c->l2 + j * img->l2_entry_size);
      enum entry_type t = entry_type (c, e);

      if (t != E_NORMAL && t != E_ZERO_ALLOC)
        continue;
      rc = 1;
      if (!c->data_file &&
          stored_refcount (c, (e & L2E_OFFSET_MASK) >> img->cluster_bits,
                           &rc) == -1)
        continue;
      if ((rc == 1) != !!(e & ENTRY_COPIED)) {
        diag_error ("ERROR OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                    " refcount=%" PRIu64, e, rc);
        corruption (c);
        c->copied_corruptions++;
      }
    }
  }
  return 0;
}

static int
count_references (struct check *c)
{
  const struct qcow2_image *img = c->img;
  const struct qcow2_header *h = &img->hdr;

  if (reference (c, 0, img->cluster_size) == -1 ||
      check_l1 (c, h->l1_table_offset, h->l1_size, true) == -1 ||
      check_snapshots (c) == -1 ||
      load_reftable (c) == -1)
    return -1;
  if (h->crypto_offset &&
      reference (c, h->crypto_offset, h->crypto_length) == -1)
    return -1;
  return check_refblocks (c);
}

int
check_run (struct check *c, struct qcow2_image *img,
           struct qcow2_check_result *r)
{
  uint64_t highest = 0;

  *c = (struct check) { .img = img, .r = r };
  memset (r, 0, sizeof *r);
  if (img->qcow1) {
    diag_error ("%s: qcow (version 1) images cannot be checked",
                img->filename);
    errno = ENOTSUP;
    return -1;
  }
  if (img->hdr.autoclear & AUTOCLEAR_BITMAPS) {
    diag_error ("%s: the image has persistent dirty bitmaps, which are "
                "not checked; refusing", img->filename);
    errno = ENOTSUP;
    return -1;
  }
  c->data_file = (img->hdr.incompatible & INCOMPAT_DATA_FILE) != 0;
  c->max = refcount_max (img->hdr.refcount_order);
  c->rb_bits = refblock_bits (img->cluster_bits, img->hdr.refcount_order);
  c->file_clusters = DIV_ROUND_UP (img->file_size, img->cluster_size);
  r->total_clusters = DIV_ROUND_UP (img->hdr.size, img->cluster_size);
  c->l2 = malloc (img->cluster_size);
  c->block = malloc (img->cluster_size);
  if (c->l2 == NULL || c->block == NULL) {
    diag_error ("malloc: %m");
    r->check_errors++;
    return -1;
  }
  if (grow_counts (c, MAX (c->file_clusters, UINT64_C (1))) == -1 ||
      count_references (c) == -1 ||
      compare_refcounts (c, &highest) == -1 ||
      check_copied (c) == -1)
    return -1;
  r->image_end_offset = (highest + 1) << img->cluster_bits;
  return 0;
}

void
check_free (struct check *c)
{
  free (c->counts);
  free (c->reftable);
  free (c->block);
  free (c->l2);
  c->counts = c->reftable = NULL;
  c->block = c->l2 = NULL;
}

int
qcow2_check (struct qcow2_image *img, struct qcow2_check_result *r)
{
  struct check c;
  int ret = check_run (&c, img, r);

  check_free (&c);
  return ret;
}
