/* Block status: what the guest sees, in NBD's terms.  Matches what
 * qemu-nbd reports for the same image: data (compressed or not) is
 * data; zero clusters and unallocated space without a backing file are
 * holes that read as zeroes.
 */
#include <config.h>

#include "internal.h"
#include "io.h"
#include "minmax.h"

/* Adjacent runs of one type are merged before they reach the caller. */
struct extent_acc {
  qcow2_extent_fn fn;
  void *opaque;
  uint64_t offset, length;
  uint32_t type;
};

static int
acc_flush (struct extent_acc *a)
{
  int r = 0;

  if (a->length)
    r = a->fn (a->opaque, a->offset, a->length, a->type);
  a->length = 0;
  return r;
}

/* Returns 1 when req_one is satisfied. */
static int
acc_add (struct extent_acc *a, uint64_t offset, uint64_t length,
         uint32_t type, bool req_one)
{
  if (a->length && a->type == type && a->offset + a->length == offset) {
    a->length += length;
    return 0;
  }
  if (a->length) {
    if (acc_flush (a) == -1)
      return -1;
    if (req_one)
      return 1;
  }
  a->offset = offset;
  a->length = length;
  a->type = type;
  return 0;
}

static int
forward_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  struct extent_acc *a = opaque;

  return acc_add (a, offset, length, type, false);
}

/* Unallocated space shows what the layers below hold. */
static int
unallocated_extents (struct qcow2_image *img, struct extent_acc *a,
                     uint64_t offset, uint64_t length)
{
  const struct backing *b = img->backing;
  uint64_t below = 0;

  if (b && offset < b->size) {
    below = MIN (length, b->size - offset);
    if (b->qcow2) {
      if (qcow2_extents (b->qcow2, below, offset, false,
                         forward_extent, a) == -1)
        return -1;
    }
    else if (backing_raw_extents (b, offset, below, forward_extent, a) == -1)
      return -1;
  }
  if (below < length)
    return acc_add (a, offset + below, length - below,
                    QCOW2_EXTENT_HOLE | QCOW2_EXTENT_ZERO, false);
  return 0;
}

/* In a metadata-preallocated image (prealloc.c), data clusters whose
 * host range is a hole in the file read as zeroes and say so (data,
 * zero), as QEMU reports them.
 */
static int
data_extents (struct qcow2_image *img, struct extent_acc *a, uint64_t offset,
              uint64_t length, uint64_t host, bool req_one)
{
  while (length > 0) {
    bool hole;
    uint64_t n;
    int r;

    if (io_extent (img->data, host, length, &hole, &n) == -1)
      return -1;
    if (n == 0)
      n = length;
    r = acc_add (a, offset, n, hole ? QCOW2_EXTENT_ZERO : 0, req_one);
    if (r != 0)
      return r;
    offset += n;
    host += n;
    length -= n;
  }
  return 0;
}

int
qcow2_extents (struct qcow2_image *img, uint64_t count, uint64_t offset,
               bool req_one, qcow2_extent_fn fn, void *opaque)
{
  struct extent_acc a = { .fn = fn, .opaque = opaque };
  int r = 0;

  while (count > 0) {
    struct mapping m;

    r = cluster_map_shared (img, offset, count, &m);
    if (r == -1)
      return -1;

    switch (m.kind) {
    case MAP_DATA:
      /* A hole in an encrypted image's file is not guest zeroes (QEMU
       * does not look below encrypted data either).
       */
      if (img->metadata_preallocated && img->crypt == NULL)
        r = data_extents (img, &a, offset, m.length, m.host_offset, req_one);
      else
        r = acc_add (&a, offset, m.length, 0, req_one);
      break;
    case MAP_COMPRESSED:
      r = acc_add (&a, offset, m.length, 0, req_one);
      break;
    case MAP_ZERO:
      r = acc_add (&a, offset, m.length,
                   QCOW2_EXTENT_HOLE | QCOW2_EXTENT_ZERO, req_one);
      break;
    case MAP_UNALLOCATED:
      r = unallocated_extents (img, &a, offset, m.length);
      break;
    }
    if (r == -1)
      return -1;
    if (r == 1)
      return 0;
    offset += m.length;
    count -= m.length;
  }
  return acc_flush (&a);
}
