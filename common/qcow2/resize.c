/* Changing the virtual size ("Header": size and l1_size, "Cluster
 * mapping" in qcow2.txt).
 *
 * Growing: when the L1 table no longer covers the new size, a larger
 * copy goes to new clusters and one header write switches l1_size and
 * l1_table_offset (adjacent fields); the size follows in a second
 * write.  Where the backing file holds data past the old end, that
 * range is zeroed first, as QEMU does, so that the grown part reads as
 * zeroes and not as the backing file's bytes.
 *
 * Shrinking: the size is written first (the data past it is then out
 * of the guest's sight), then the clusters past it are released; the
 * L1 table keeps its size, as QEMU's does.  Without `discard` a shrink
 * is refused while data is stored past the new end.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "diag.h"
#include "edit.h"
#include "internal.h"
#include "minmax.h"
#include "qcow2-edit.h"
#include "refcount-format.h"
#include "rounding.h"
#include "write-state.h"

static int
write_size (struct qcow2_image *img, uint64_t size)
{
  unsigned char b[8];

  store_be64 (b, size);
  if (header_switch (img, HDR_SIZE, b, sizeof b) == -1)
    return -1;
  img->size = img->hdr.size = size;
  return 0;
}

/* Move to an L1 table of n entries (n > l1_size). */
static int
grow_l1 (struct qcow2_image *img, uint32_t n)
{
  const uint64_t old_offset = img->hdr.l1_table_offset;
  const uint64_t old_bytes = (uint64_t) img->l1_size * 8;
  unsigned char fields[12];
  uint64_t *l1, offset;
  unsigned char *be;
  int r;

  l1 = calloc (n, sizeof *l1);
  be = malloc ((uint64_t) n * 8);
  if (l1 == NULL || be == NULL) {
    diag_error ("malloc: %m");
    free (l1);
    free (be);
    return -1;
  }
  memcpy (l1, img->l1, old_bytes);
  table_store (be, l1, n, 0);
  r = table_place (img, be, (uint64_t) n * 8, &offset);
  free (be);
  /* Entries changed in memory only would be written to the old table. */
  if (r == -1 || checkpoint (img) == -1) {
    free (l1);
    return -1;
  }
  store_be32 (fields, n);
  store_be64 (fields + 4, offset);
  if (header_switch (img, HDR_L1_SIZE, fields, sizeof fields) == -1) {
    free (l1);
    return -1;
  }
  free (img->l1);
  img->l1 = l1;
  img->l1_size = img->hdr.l1_size = n;
  img->hdr.l1_table_offset = offset;
  if (overlap_index_rebuild (img) == -1 ||
      (old_bytes && refcount_release (img, old_offset, old_bytes) == -1))
    return write_failed (img);
  return 0;
}

/* L1 entries needed for size bytes. */
static uint64_t
l1_entries_for (const struct qcow2_image *img, uint64_t size)
{
  return DIV_ROUND_UP (size, l2_coverage (img));
}

static int
grow_tables (struct qcow2_image *img, uint64_t size)
{
  SCOPED_WRLOCK (&img->meta_lock);
  uint64_t n = l1_entries_for (img, size);

  if (edit_begin (img, "resize the image") == -1)
    return -1;
  if (n * 8 > MAX_L1_BYTES) {
    diag_error ("%s: %" PRIu64 " bytes needs an L1 table larger than %d "
                "bytes", img->filename, size, MAX_L1_BYTES);
    errno = EFBIG;
    return -1;
  }
  return n > img->l1_size ? grow_l1 (img, n) : 0;
}

static int
grow (struct qcow2_image *img, uint64_t size)
{
  const uint64_t old_size = img->size;
  uint64_t below = img->backing ? img->backing->size : 0;

  if (grow_tables (img, size) == -1)
    return -1;
  if (below > old_size) {
    /* Past the guest's end for now: a crash leaves no visible change. */
    img->size = size;
    if (qcow2_zero (img, MIN (size, below) - old_size, old_size, 0) == -1 ||
        qcow2_flush (img) == -1) {
      img->size = old_size;
      return -1;
    }
  }
  SCOPED_WRLOCK (&img->meta_lock);
  return write_size (img, size);
}

/* Refuse a shrink to size while clusters past it hold data. */
static int
check_nothing_past (struct qcow2_image *img, uint64_t size)
{
  uint64_t offset = size;

  while (offset < img->size) {
    struct mapping m;

    if (cluster_map (img, offset, img->size - offset, &m) == -1)
      return -1;
    if (m.kind == MAP_DATA || m.kind == MAP_COMPRESSED) {
      diag_error ("%s: data is stored at guest offset %" PRIu64 ", past "
                  "the new size %" PRIu64 ": discard it with --shrink",
                  img->filename, offset, size);
      errno = EEXIST;
      return -1;
    }
    offset += m.length;
  }
  return 0;
}

/* Release the entries of L2 table l1_index from entry `from` on. */
static int
clear_l2_tail (struct qcow2_image *img, uint32_t l1_index, uint64_t from)
{
  struct meta_table *t;
  int r = 0;

  if (l2_for_write (img, l1_index, &t) == -1)
    return -1;
  for (uint64_t j = from; j < l2_entries_per_table (img) && r == 0; j++) {
    struct l2_entry d;

    r = l2_decode (img, t, j, &d);
    if (r == 0)
      r = l2_release_entry (img, &d);
    if (r == 0)
      l2_store_entry (img, t, j, 0, 0);
  }
  meta_cache_mark_dirty (img->l2_cache, t);
  meta_cache_put (img->l2_cache, t);
  return r;
}

/* Release every cluster wholly past size. */
static int
discard_past (struct qcow2_image *img, uint64_t size)
{
  const uint64_t first = DIV_ROUND_UP (size, img->cluster_size);
  const uint64_t entries = l2_entries_per_table (img);
  uint64_t i = first >> img->l2_bits;

  if (i < img->l1_size && (first & (entries - 1)) &&
      l1_entry_l2_offset (img, i) > 0) {
    if (clear_l2_tail (img, i, first & (entries - 1)) == -1)
      return -1;
    i++;
  }
  for (; i < img->l1_size; i++) {
    if (img->l1[i] == 0)
      continue;
    if (tree_release (img, &img->l1[i], 1) == -1)
      return -1;
    img->l1[i] = 0;
    l1_mark_dirty (img->w, i);
  }
  return 0;
}

static int
shrink (struct qcow2_image *img, uint64_t size, bool discard)
{
  SCOPED_WRLOCK (&img->meta_lock);

  if (edit_begin (img, "resize the image") == -1 ||
      (!discard && check_nothing_past (img, size) == -1) ||
      write_size (img, size) == -1)
    return -1;
  if (discard_past (img, size) == -1 ||
      checkpoint (img) == -1 ||
      checkpoint (img) == -1)
    return write_failed (img);
  return 0;
}

int
qcow2_resize (struct qcow2_image *img, uint64_t size, bool discard)
{
  if (!IS_ALIGNED (size, 512)) {
    diag_error ("%s: the new size %" PRIu64 " is not a multiple of 512",
                img->filename, size);
    errno = EINVAL;
    return -1;
  }
  if (qcow2_prepare_write (img) == -1)
    return -1;
  if (img->data != img->file) {
    diag_error ("%s: resizing an image with an external data file is not "
                "supported", img->filename);
    errno = ENOTSUP;
    return -1;
  }
  if (size == img->size)
    return 0;
  return size > img->size ? grow (img, size) : shrink (img, size, discard);
}
