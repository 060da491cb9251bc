/* Making a new qcow2 image, as `qemu-img create -f qcow2` does: the
 * steps in QEMU's order (create.h says how, and where each step is).
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "create.h"
#include "diag.h"
#include "io.h"
#include "qcow2.h"
#include "rounding.h"

int
qcow2_create_check (const struct qcow2_create_options *opts)
{
  struct qcow2_create_options o = *opts;

  if (o.version == 0)
    o.version = 3;
  return create_check_options (&o,
                               o.cluster_size ? o.cluster_size
                               : DEFAULT_CLUSTER_SIZE,
                               o.refcount_bits ? o.refcount_bits
                               : DEFAULT_REFCOUNT_BITS);
}

int
qcow2_create_on (const struct qcow2_create_options *opts,
                 const struct qcow2_create_files *f)
{
  struct qcow2_create_options o = *opts;
  uint32_t cluster_size = o.cluster_size ? o.cluster_size : DEFAULT_CLUSTER_SIZE;
  unsigned refcount_bits = o.refcount_bits ? o.refcount_bits : DEFAULT_REFCOUNT_BITS;
  uint64_t size = o.size, backing_size;
  struct layout l;
  bool allocate;
  int r = -1;

  if (o.version == 0)
    o.version = 3;
  if (create_check_options (&o, cluster_size, refcount_bits) == -1)
    return -1;
  if (o.backing_file) {
    if (create_probe_backing (&o, f->backing, &backing_size) == -1)
      return -1;
    if (o.size_from_backing) {
      if (backing_size == INVALID)
        return create_invalid ("create: the size of a backing file in this "
                               "format is not known; give the size");
      size = backing_size;
    }
  }
  /* qemu-img counts in 512-byte sectors. */
  if (size > INT64_MAX - 511)
    return create_invalid ("create: the virtual size is too large");
  size = ROUND_UP (size, 512);
  /* A raw data file is mapped one to one, which QEMU does by
   * preallocating the metadata.
   */
  if (o.data_file_raw && o.preallocation == QCOW2_PREALLOC_OFF)
    o.preallocation = QCOW2_PREALLOC_METADATA;

  if (layout_init (&l, cluster_size, refcount_bits, o.extended_l2) == -1)
    goto out;
  l.data_end = size;
  if (layout_make_l1 (&l, size) == -1)
    goto out;
  allocate = o.preallocation == QCOW2_PREALLOC_FALLOC ||
    o.preallocation == QCOW2_PREALLOC_FULL;
  if (o.preallocation == QCOW2_PREALLOC_METADATA ||
      (allocate && o.data_file != NULL)) {
    /* With a data file, QEMU preallocates the metadata and leaves the
     * rest to the data file.
     */
    if (layout_preallocate (&l, o.data_file != NULL, size) == -1)
      goto out;
  }
  else if (allocate && layout_preallocate_data (&l, size) == -1)
    goto out;
  if (o.encrypt == QCOW2_ENCRYPT_LUKS && layout_alloc_luks_area (&l, &o) == -1)
    goto out;

  if (create_check_room (f->image, &l) == -1 ||
      create_allocate_range (f->image, l.falloc_start, l.falloc_length) == -1 ||
      (o.data_file && create_data_file (f->data, l.data_end, allocate) == -1) ||
      create_write_image (f->image, &o, &l, size, refcount_bits) == -1)
    goto out;
  diag_debug ("created %s: %" PRIu64 " bytes, %" PRIu64 " bytes of metadata",
              o.filename, size, l.file_end);
  r = 0;

 out:
  layout_free (&l);
  return r;
}
