/* Creating an image, step 6: writing the model out (see create.h),
 * and the external data file.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byte-order.h"
#include "cleanup.h"
#include "create.h"
#include "diag.h"
#include "format.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "refcount-format.h"

static int
write_refblocks (struct io *io, const struct layout *l, unsigned refcount_bits,
                 unsigned char *buf)
{
  uint64_t entries = UINT64_C (1) << l->refblock_bits, i, j;
  unsigned order = __builtin_ctz (refcount_bits);

  for (i = 0; i < l->reftable_entries; i++) {
    if (l->reftable[i] == 0)
      continue;
    memset (buf, 0, l->cluster_size);
    for (j = 0; j < entries; j++)
      if (layout_is_used (l, i * entries + j))
        refblock_set (buf, j, order, 1);
    if (io_pwrite (io, buf, l->cluster_size, l->reftable[i]) == -1)
      return -1;
  }
  return 0;
}

static int
write_table (struct io *io, const uint64_t *entries, uint64_t n,
             uint64_t flags, uint64_t offset)
{
  CLEANUP_FREE unsigned char *buf = malloc (n * TABLE_ENTRY_SIZE);

  if (buf == NULL)
    return create_no_memory ();
  table_store (buf, entries, n, flags);
  return io_pwrite (io, buf, n * TABLE_ENTRY_SIZE, offset);
}

/* Fill the L2 tables from the data runs.  Every entry of a new
 * allocation has COPIED (refcount 1); extended L2 bitmaps stay 0, as
 * QEMU leaves them for preallocated clusters.
 */
static int
write_l2_tables (struct io *io, const struct layout *l, unsigned char *buf)
{
  uint64_t entry_size = l->cluster_size >> l->l2_bits;
  uint64_t per_table = UINT64_C (1) << l->l2_bits;
  size_t r = 0;
  uint64_t t;

  for (t = 0; t < l->l1_size; t++) {
    uint64_t first = t * per_table, end = first + per_table;

    if (l->l1[t] == 0)
      continue;
    memset (buf, 0, l->cluster_size);
    while (r < l->nr_runs &&
           l->runs[r].guest_cluster + l->runs[r].count <= first)
      r++;
    for (size_t k = r; k < l->nr_runs && l->runs[k].guest_cluster < end; k++) {
      const struct data_run *run = &l->runs[k];
      uint64_t g = MAX (run->guest_cluster, first);
      uint64_t stop = MIN (run->guest_cluster + run->count, end);

      for (; g < stop; g++) {
        uint64_t host = run->host_cluster + (g - run->guest_cluster);

        store_be64 (buf + (g - first) * entry_size,
                    (host << l->cluster_bits) | ENTRY_COPIED);
      }
    }
    if (io_pwrite (io, buf, l->cluster_size, l->l1[t]) == -1)
      return -1;
  }
  return 0;
}

int
create_write_image (struct io *io, const struct qcow2_create_options *o,
                    const struct layout *l, uint64_t size,
                    unsigned refcount_bits)
{
  CLEANUP_FREE unsigned char *buf = calloc (1, l->cluster_size);
  size_t i;

  if (buf == NULL)
    return create_no_memory ();

  for (i = 0; i < l->nr_stale; i++)
    if (write_table (io, l->stale[i].entries, l->stale[i].nr_entries, 0,
                     l->stale[i].offset) == -1)
      return -1;

  if (create_build_header (o, l, size, refcount_bits, buf) == -1 ||
      io_pwrite (io, buf, l->cluster_size, 0) == -1)
    return -1;
  if (write_refblocks (io, l, refcount_bits, buf) == -1 ||
      write_table (io, l->reftable, l->reftable_entries, 0,
                   l->reftable_offset) == -1)
    return -1;
  if (l->l1_size > 0 &&
      write_table (io, l->l1, l->l1_size, ENTRY_COPIED, l->l1_offset) == -1)
    return -1;
  if (write_l2_tables (io, l, buf) == -1 ||
      (o->encrypt == QCOW2_ENCRYPT_LUKS &&
       create_write_luks_header (io, o, l) == -1))
    return -1;
  /* A file that cannot grow keeps its length (create_check_room). */
  if (!io->fixed_size && io_truncate (io, l->file_end) == -1)
    return -1;
  return io_flush (io);
}

/* A file that cannot grow must hold the whole new image. */
int
create_check_room (struct io *io, const struct layout *l)
{
  uint64_t end = MAX (l->file_end, l->falloc_start + l->falloc_length);
  int64_t size;

  if (!io->fixed_size)
    return 0;
  size = io_size (io);
  if (size == -1)
    return -1;
  if ((uint64_t) size >= end)
    return 0;
  diag_error ("create: %s: the new image needs %" PRIu64 " bytes, but the "
              "file cannot grow past its %" PRIi64, io->name, end, size);
  errno = ENOSPC;
  return -1;
}

/* preallocation=falloc|full: the file system allocates the range (the
 * bytes stay zero, so this is all "full" needs to add too).
 */
int
create_allocate_range (struct io *io, uint64_t offset, uint64_t length)
{
  return length == 0 ? 0 : io_zero (io, offset, length);
}

/* The external data file: as long as the disk (or its last
 * preallocated cluster).
 */
int
create_data_file (struct io *io, uint64_t length, bool allocate)
{
  if (io_truncate (io, length) == -1 ||
      (allocate && create_allocate_range (io, 0, length) == -1))
    return -1;
  return io_flush (io);
}
