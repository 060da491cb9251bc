/* Committing an image into its backing file, as `qemu-img commit`
 * does: every range the image itself maps (data, compressed or zero
 * clusters) is written to the layer below, which is made durable; then
 * the image is emptied (every L1 entry cleared, every cluster released)
 * so that it reads through to the backing file again.  A crash during
 * the copy leaves the image as it was over a backing file that already
 * holds some of its data, which the image hides; a crash while it is
 * emptied, at worst leaked clusters.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "cleanup.h"
#include "diag.h"
#include "edit.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "qcow2-edit.h"
#include "write-state.h"

#define COPY_BUFFER (2 * 1024 * 1024)

static int
open_backing_for_writing (struct qcow2_image *img)
{
  struct backing *b = img->backing;

  if (b == NULL) {
    diag_error ("%s: cannot commit: the image has no backing file",
                img->filename);
    errno = EINVAL;
    return -1;
  }
  if (b->size < img->size) {
    diag_error ("%s: cannot commit: the backing file (%" PRIu64 " bytes) "
                "is smaller than the image (%" PRIu64 " bytes)",
                img->filename, b->size, img->size);
    errno = ENOSPC;
    return -1;
  }
  /* The chain opens every layer below read-only. */
  if (b->qcow2)
    b->qcow2->readonly = false;
  if ((b->raw ? io_make_writable (b->raw) : qcow2_prepare_write (b->qcow2)) == 0)
    return 0;
  if (errno == EROFS)
    diag_error ("%s: cannot commit: its backing file cannot be written "
                "(it must be opened with writable_backing)", img->filename);
  return -1;
}

static int
backing_write (struct backing *b, const void *buf, uint64_t count,
               uint64_t offset)
{
  return b->raw ? io_pwrite (b->raw, buf, count, offset)
    : qcow2_pwrite (b->qcow2, buf, count, offset, 0);
}

static int
backing_zero (struct backing *b, uint64_t count, uint64_t offset)
{
  return b->raw ? io_zero (b->raw, offset, count)
    : qcow2_zero (b->qcow2, count, offset, 0);
}

static int
backing_flush (struct backing *b)
{
  return b->raw ? io_flush (b->raw) : qcow2_flush (b->qcow2);
}

static int
copy_range (struct qcow2_image *img, unsigned char *buf, uint64_t count,
            uint64_t offset)
{
  while (count > 0) {
    uint64_t n = MIN (count, (uint64_t) COPY_BUFFER);

    if (qcow2_pread (img, buf, n, offset) == -1 ||
        backing_write (img->backing, buf, n, offset) == -1)
      return -1;
    count -= n;
    offset += n;
  }
  return 0;
}

static int
copy_down (struct qcow2_image *img)
{
  unsigned char *buf = malloc (COPY_BUFFER);
  uint64_t offset = 0;
  int r = 0;

  if (buf == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  while (offset < img->size && r == 0) {
    struct mapping m;

    r = cluster_map_shared (img, offset, img->size - offset, &m);
    if (r == -1)
      break;
    if (m.kind == MAP_ZERO)
      r = backing_zero (img->backing, m.length, offset);
    else if (m.kind != MAP_UNALLOCATED)
      r = copy_range (img, buf, m.length, offset);
    offset += m.length;
  }
  free (buf);
  return r == 0 ? backing_flush (img->backing) : -1;
}

static int
empty_image (struct qcow2_image *img)
{
  SCOPED_WRLOCK (&img->meta_lock);

  if (edit_begin (img, "empty the image") == -1)
    return -1;
  for (uint32_t i = 0; i < img->l1_size; i++) {
    if (img->l1[i] == 0)
      continue;
    if (tree_release (img, &img->l1[i], 1) == -1)
      return write_failed (img);
    img->l1[i] = 0;
    l1_mark_dirty (img->w, i);
  }
  /* Clear the entries on disk, then lower and write the refcounts. */
  if (checkpoint (img) == -1 || checkpoint (img) == -1)
    return -1;
  return 0;
}

int
qcow2_commit (struct qcow2_image *img)
{
  if (qcow2_prepare_write (img) == -1 ||
      open_backing_for_writing (img) == -1 ||
      copy_down (img) == -1)
    return -1;
  return empty_image (img);
}
