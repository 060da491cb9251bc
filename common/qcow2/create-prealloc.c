/* Creating an image, step 3: preallocation, as QEMU's truncate to the
 * virtual size does it (see create.h).
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "create.h"
#include "diag.h"
#include "minmax.h"
#include "rounding.h"

/* QEMU's limit on a single request, and on the bytes one preallocation
 * step covers (BDRV_REQUEST_MAX_BYTES and INT_MAX, both in block.h).
 */
#define MAX_REQUEST_BYTES      ((uint64_t) (INT_MAX >> 9) << 9)

/* ---------------------------------------------------------------------
 * preallocation=metadata: QEMU's preallocate_co over the whole disk.
 */

static int
add_run (struct layout *l, uint64_t guest_cluster, uint64_t host_cluster,
         uint64_t count)
{
  struct data_run *last = l->nr_runs ? &l->runs[l->nr_runs - 1] : NULL;

  if (last && last->guest_cluster + last->count == guest_cluster &&
      last->host_cluster + last->count == host_cluster) {
    last->count += count;
    return 0;
  }
  if (l->nr_runs == l->runs_cap) {
    size_t cap = l->runs_cap ? 2 * l->runs_cap : 64;
    struct data_run *p = realloc (l->runs, cap * sizeof *p);

    if (p == NULL)
      return create_no_memory ();
    l->runs = p;
    l->runs_cap = cap;
  }
  l->runs[l->nr_runs++] = (struct data_run) {
    .guest_cluster = guest_cluster, .host_cluster = host_cluster, .count = count,
  };
  return 0;
}

/* QEMU's get_cluster_table: the L2 table for a guest offset, allocated
 * when missing.
 */
static int
ensure_l2 (struct layout *l, uint64_t guest_offset)
{
  uint64_t index = guest_offset >> (l->cluster_bits + l->l2_bits);
  uint64_t table;

  if (l->l1[index])
    return 0;
  if (layout_alloc_clusters (l, 1, &table) == -1)
    return -1;
  l->l1[index] = table << l->cluster_bits;
  layout_written (l, l->l1[index], l->cluster_size);
  return 0;
}

/* QEMU's qcow2_alloc_host_offset for a range of unallocated clusters:
 * allocates data clusters one L2 table (or one request) at a time and
 * stops where the next piece cannot follow the previous one on the
 * host.  *bytes becomes what was done, *host where it starts.
 */
static int
alloc_host_range (struct layout *l, bool external_data,
                  uint64_t start, uint64_t *bytes, uint64_t *host)
{
  uint64_t cs = l->cluster_size;
  uint64_t l2_entries = UINT64_C (1) << l->l2_bits;
  uint64_t pos = start, remaining = *bytes, cur = 0, next = INVALID;

  *host = INVALID;
  for (;;) {
    uint64_t in_cluster, index, n, first;

    if (*host == INVALID && next != INVALID)
      *host = next;
    pos += cur;
    remaining -= cur;
    if (next != INVALID)
      next += cur;
    if (remaining == 0)
      break;
    cur = remaining;

    if (ensure_l2 (l, pos) == -1)
      return -1;

    in_cluster = pos & (cs - 1);
    index = (pos >> l->cluster_bits) & (l2_entries - 1);
    n = DIV_ROUND_UP (in_cluster + cur, cs);
    n = MIN (n, l2_entries - index);
    n = MIN (n, MAX_REQUEST_BYTES >> l->cluster_bits);

    if (external_data)
      /* QEMU maps a data file one to one: no allocation, no refcounts. */
      first = pos >> l->cluster_bits;
    else if (next == INVALID) {
      if (layout_alloc_clusters (l, n, &first) == -1)
        return -1;
    }
    else {
      int64_t r;

      first = next >> l->cluster_bits;
      r = layout_alloc_clusters_at (l, first, n);
      if (r == -1)
        return -1;
      if (r == 0)
        break;                  /* cannot continue contiguously */
      n = r;
    }
    if (add_run (l, pos >> l->cluster_bits, first, n) == -1)
      return -1;
    if (next == INVALID)
      next = (first << l->cluster_bits) + in_cluster;
    cur = MIN (cur, n * cs - in_cluster);
  }
  *bytes -= remaining;
  return 0;
}

int
layout_preallocate (struct layout *l, bool external_data, uint64_t size)
{
  uint64_t offset = 0, cur = 0, host = INVALID, end;

  while (offset < size) {
    cur = MIN (size - offset, ROUND_DOWN ((uint64_t) INT_MAX, l->cluster_size));
    if (alloc_host_range (l, external_data, offset, &cur, &host) == -1)
      return -1;
    offset += cur;
  }

  /* The file is extended to the end of the last cluster allocated. */
  if (host != INVALID) {
    end = ROUND_UP (host + cur, l->cluster_size);
    if (external_data)
      l->data_end = MAX (l->data_end, end);
    else
      l->file_end = MAX (l->file_end, end);
  }
  return 0;
}

/* preallocation=falloc|full without a data file, as QEMU's
 * qcow2_co_truncate does it: refcount structures that cover the data
 * and its L2 tables go at the end of the file, then all the data
 * clusters in one run after them, then the L2 tables wherever the
 * allocator finds room (often in the clusters of the refcount table
 * just replaced).  The run is allocated in the file system too.
 */
int
layout_preallocate_data (struct layout *l, uint64_t size)
{
  uint64_t l2_entries = UINT64_C (1) << l->l2_bits;
  uint64_t end, n_data, n_l2, start, guest, n;
  int64_t got;

  n_data = DIV_ROUND_UP (size, l->cluster_size);

  /* The file ends after its last cluster in use. */
  for (end = DIV_ROUND_UP (l->file_end, l->cluster_size);
       end > 0 && !layout_is_used (l, end - 1); end--)
    ;
  if (end == 0)
    end = DIV_ROUND_UP (l->file_end, l->cluster_size);

  /* Room for a head and a tail L2 table that only partly cover data. */
  n_l2 = DIV_ROUND_UP (n_data, l2_entries) + 1;
  if (layout_grow_reftable (l, end, n_data + n_l2, true, 0, 0, &start) == -1)
    return -1;
  got = layout_alloc_clusters_at (l, start, n_data);
  if (got == -1)
    return -1;
  if ((uint64_t) got != n_data) {
    diag_error ("create: internal error: preallocated area in use");
    errno = EIO;
    return -1;
  }
  l->falloc_start = start << l->cluster_bits;
  l->falloc_length = n_data << l->cluster_bits;
  l->file_end = MAX (l->file_end, l->falloc_start + l->falloc_length);

  for (guest = 0; guest < n_data; guest += n) {
    n = MIN (n_data - guest, l2_entries - (guest & (l2_entries - 1)));
    if (ensure_l2 (l, guest << l->cluster_bits) == -1 ||
        add_run (l, guest, start + guest, n) == -1)
      return -1;
  }
  return 0;
}

