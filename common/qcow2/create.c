/* Making a new qcow2 image: what `qemu-img create -f qcow2` makes.
 *
 * The result is meant to be the same file, byte for byte, that QEMU 7.2
 * writes for the same options.  The layout is therefore not computed
 * from a formula: the image is built by replaying, in memory, the
 * allocations QEMU performs while it creates an image (the three
 * clusters of qcow2_co_create, the L1 table of the truncate to the
 * virtual size, then preallocation), with a model of its first-fit
 * cluster allocator, of the way it places refcount blocks (where the
 * next free cluster is, describing themselves when they can) and of
 * how it grows the refcount table.  Only the finished model is written
 * to the file.
 *
 * Every cluster of a new image has a refcount of 0 or 1, so the model
 * keeps one bit per host cluster.  Data clusters are kept as runs
 * (guest cluster, host cluster, count), from which the L2 tables are
 * generated when they are written.
 *
 * Format references are to docs/interop/qcow2.txt in QEMU's sources.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "cleanup.h"
#include "diag.h"
#include "format.h"
#include "internal.h"
#include "io.h"
#include "luks.h"
#include "minmax.h"
#include "qcow2.h"
#include "rounding.h"

#define DEFAULT_CLUSTER_SIZE   65536
#define DEFAULT_REFCOUNT_BITS  16
#define REFTABLE_ENTRY_SIZE    8
#define L1_ENTRY_SIZE          8
#define INVALID                UINT64_MAX

/* QEMU's limit on a single request, and on the bytes one preallocation
 * step covers (BDRV_REQUEST_MAX_BYTES and INT_MAX, both in block.h).
 */
#define MAX_REQUEST_BYTES      ((uint64_t) (INT_MAX >> 9) << 9)

/* QEMU writes the feature name table only when clusters are larger than
 * this (checked against qemu-img 7.2: none at 4K, present from 8K).
 */
#define FEATURE_TABLE_MIN_CLUSTER 8192

/* ---------------------------------------------------------------------
 * Checking the options
 */

static int
invalid (const char *what)
{
  diag_error ("%s", what);
  errno = EINVAL;
  return -1;
}

/* The same rules, in the same words, as qemu-img's qcow2_co_create. */
static int
check_options (const struct qcow2_create_options *o,
               uint32_t cluster_size, unsigned refcount_bits)
{
  if (o->filename == NULL || *o->filename == '\0')
    return invalid ("create: no image file name");
  if (o->version != 2 && o->version != 3)
    return invalid ("create: compat must be 0.10 (v2) or 1.1 (v3)");
  if (cluster_size < (1u << MIN_CLUSTER_BITS) ||
      cluster_size > (1u << MAX_CLUSTER_BITS) ||
      !is_power_of_2 (cluster_size))
    return invalid ("Cluster size must be a power of two between 512 and 2048k");
  if (refcount_bits == 0 || refcount_bits > 64 || !is_power_of_2 (refcount_bits))
    return invalid ("Refcount width must be a power of two and may not exceed 64 bits");
  if (o->compression_type > 1)
    return invalid ("create: compression type must be zlib or zstd");

  if (o->version == 2) {
    if (o->lazy_refcounts)
      return invalid ("Lazy refcounts only supported with compatibility "
                      "level 1.1 and above (use compat=1.1 or greater)");
    if (refcount_bits != 16)
      return invalid ("Different refcount widths than 16 bits require "
                      "compatibility level 1.1 or above (use compat=1.1 or greater)");
    if (o->extended_l2)
      return invalid ("Extended L2 entries are only supported with "
                      "compatibility level 1.1 and above (use compat=1.1 or greater)");
    if (o->compression_type != 0)
      return invalid ("Non-zlib compression type is only supported with "
                      "compatibility level 1.1 and above (use compat=1.1 or greater)");
    if (o->data_file)
      return invalid ("External data files are only supported with "
                      "compatibility level 1.1 and above (use compat=1.1 or greater)");
  }
  if (o->encrypt != QCOW2_ENCRYPT_NONE && o->passphrase == NULL)
    return invalid ("create: an encrypted image needs a passphrase");
  if (o->extended_l2 && cluster_size < 16384)
    return invalid ("Extended L2 entries are only supported with cluster "
                    "sizes of at least 16384 bytes");

  if (o->backing_file == NULL && o->backing_format)
    return invalid ("Backing format cannot be used without backing file");
  if (o->backing_file && o->backing_format == NULL)
    return invalid ("Backing file specified without backing format");
  if (o->backing_file &&
      (*o->backing_file == '\0' || strlen (o->backing_file) > MAX_BACKING_FILE_SIZE))
    return invalid ("create: the backing file name must be 1 to 1023 bytes long");
  if (o->backing_format && *o->backing_format == '\0')
    return invalid ("create: empty backing format");
  if (o->backing_file == NULL && o->size_from_backing)
    return invalid ("create: the size is required without a backing file");

  if (o->data_file_raw && o->data_file == NULL)
    return invalid ("data-file-raw requires data-file");
  if (o->data_file && *o->data_file == '\0')
    return invalid ("create: empty data file name");
  if (o->data_file_raw && o->backing_file)
    return invalid ("Backing file and data-file-raw cannot be used at the same time");
  if (o->backing_file && o->preallocation != QCOW2_PREALLOC_OFF &&
      !o->extended_l2)
    return invalid ("Backing file and preallocation can only be used at "
                    "the same time if extended_l2 is on");
  return 0;
}

/* ---------------------------------------------------------------------
 * The backing file, opened the way QEMU would to check it: its name is
 * relative to the directory of the new image.
 */

static char *
backing_path (const char *image, const char *backing)
{
  CLEANUP_FREE char *copy = strdup (image);
  char *path;

  if (copy == NULL)
    return NULL;
  if (backing[0] == '/' || strchr (image, '/') == NULL)
    return strdup (backing);
  if (asprintf (&path, "%s/%s", dirname (copy), backing) == -1)
    return NULL;
  return path;
}

/* Open the backing file and find its virtual size: the file size for
 * raw, the header's size field for qcow2.  Other formats are only
 * checked to exist.  Sets *size to INVALID when it cannot be known.
 */
static int
probe_backing (const struct qcow2_create_options *o, uint64_t *size)
{
  CLEANUP_FREE char *path = backing_path (o->filename, o->backing_file);
  struct io *io;
  unsigned char hdr[HDR_SIZE + 8];
  const char *type;
  int64_t len;
  int fd, r = -1;

  *size = INVALID;
  if (path == NULL) {
    diag_error ("create: %m");
    return -1;
  }
  fd = named_file_open_fd (path, O_RDONLY, &type);
  if (fd == -1) {
    int e = errno;

    if (type)
      diag_error ("create: backing file '%s' is %s; only a regular file or "
                  "a block device can be one", o->backing_file, type);
    else
      diag_error ("create: could not open backing file '%s': %m",
                  o->backing_file);
    errno = e;
    return -1;
  }
  io = io_fd_wrap (fd, path, true);
  if (io == NULL) {
    close (fd);
    return -1;
  }
  len = io_size (io);
  if (len == -1)
    goto out;

  if (strcmp (o->backing_format, "raw") == 0) {
    *size = len;
    r = 0;
  }
  else if (strcmp (o->backing_format, "qcow2") == 0) {
    if (len < (int64_t) sizeof hdr ||
        io_pread (io, hdr, sizeof hdr, 0) == -1 ||
        load_be32 (hdr + HDR_MAGIC) != QCOW2_MAGIC) {
      diag_error ("create: backing file '%s' is not in qcow2 format",
                  o->backing_file);
      errno = EINVAL;
      goto out;
    }
    *size = load_be64 (hdr + HDR_SIZE);
    r = 0;
  }
  else
    r = 0;

 out:
  io_close (io);
  return r;
}

/* ---------------------------------------------------------------------
 * The model of QEMU's allocator.
 */

/* A refcount table that was replaced by a larger one.  QEMU frees its
 * clusters but leaves the bytes in the file, where they stay unless
 * something reuses them; they are written first to come out the same.
 */
struct stale_table {
  uint64_t offset;
  uint64_t *entries;
  uint64_t nr_entries;
};

/* Data clusters: guest cluster g + i is at host cluster h + i. */
struct data_run {
  uint64_t guest_cluster;
  uint64_t host_cluster;
  uint64_t count;
};

struct layout {
  unsigned cluster_bits;
  uint64_t cluster_size;
  unsigned refblock_bits;       /* log2 of refcounts per refcount block */
  uint64_t max_clusters;        /* host offsets must stay below 2^56 */

  /* Refcounts: one bit per host cluster. */
  uint8_t *refcount;
  uint64_t refcount_cap;        /* clusters the bitmap can hold */
  uint64_t free_index;          /* QEMU's free_cluster_index */

  uint64_t *reftable;           /* byte offsets of refcount blocks */
  uint64_t reftable_entries;
  uint64_t reftable_offset;
  struct stale_table *stale;
  size_t nr_stale;

  uint64_t l1_size;
  uint64_t l1_offset;
  uint64_t *l1;                 /* byte offsets of L2 tables, 0 = none */
  unsigned l2_bits;             /* log2 of entries per L2 table */

  struct data_run *runs;
  size_t nr_runs, runs_cap;

  uint64_t file_end;            /* length of QEMU's file */
  uint64_t data_end;            /* length of the external data file */
  uint64_t falloc_start;        /* preallocated data area of the file */
  uint64_t falloc_length;

  uint64_t crypto_offset;       /* the LUKS header's clusters */
  uint64_t crypto_length;       /* its exact length, for the extension */
};

static int
no_memory (void)
{
  diag_error ("create: out of memory");
  errno = ENOMEM;
  return -1;
}

static bool
is_used (const struct layout *l, uint64_t cluster)
{
  return cluster < l->refcount_cap &&
    (l->refcount[cluster / 8] & (1u << (cluster % 8)));
}

static int
set_used (struct layout *l, uint64_t cluster, bool used)
{
  if (cluster >= l->refcount_cap) {
    uint64_t cap = MAX (l->refcount_cap * 2, ROUND_UP (cluster + 1, 4096));
    uint8_t *p = realloc (l->refcount, cap / 8);

    if (p == NULL)
      return no_memory ();
    memset (p + l->refcount_cap / 8, 0, (cap - l->refcount_cap) / 8);
    l->refcount = p;
    l->refcount_cap = cap;
  }
  if (used)
    l->refcount[cluster / 8] |= 1u << (cluster % 8);
  else
    l->refcount[cluster / 8] &= ~(1u << (cluster % 8));
  return 0;
}

static void
written (struct layout *l, uint64_t offset, uint64_t length)
{
  l->file_end = MAX (l->file_end, offset + length);
}

static int
too_big (void)
{
  diag_error ("create: the image would need host offsets beyond 2^56 "
              "(try a larger cluster size)");
  errno = EFBIG;
  return -1;
}

/* QEMU's alloc_clusters_noref: the first run of n free clusters at or
 * after free_index.  Refcounts are not touched.
 */
static int
find_free (struct layout *l, uint64_t n, uint64_t *first)
{
  uint64_t i;

 retry:
  for (i = 0; i < n; i++) {
    uint64_t c = l->free_index++;

    if (c >= l->max_clusters)
      return too_big ();
    if (is_used (l, c))
      goto retry;
  }
  *first = l->free_index - n;
  return 0;
}

static int update_refcounts (struct layout *l, uint64_t first, uint64_t n,
                             bool increase);

/* QEMU's qcow2_refcount_metadata_size: how many refcount blocks cover
 * `clusters` clusters plus the refcount structures themselves, found as
 * a fixed point; "generous" adds room for half the table again.
 */
static uint64_t
refblocks_needed (uint64_t clusters, uint64_t cluster_size,
                  uint64_t refblock_entries, bool generous)
{
  uint64_t per_table_cluster = cluster_size / REFTABLE_ENTRY_SIZE;
  uint64_t table = 0, blocks = 0, n = 0, last;

  do {
    last = n;
    blocks = DIV_ROUND_UP (clusters + table + blocks, refblock_entries);
    table = DIV_ROUND_UP (blocks, per_table_cluster);
    n = clusters + blocks + table;
    if (n == last && generous) {
      clusters += DIV_ROUND_UP (table, 2);
      n = 0;
      generous = false;
    }
  } while (n != last);
  return blocks;
}

/* QEMU's qcow2_refcount_area: a new refcount table starting at cluster
 * `start` (past everything in use), preceded by the refcount blocks
 * that are missing from `start` on, all covering themselves and
 * `additional` clusters after them; unless `exact`, the table gets room
 * to grow by half.  The block new_block (if not 0) goes into slot
 * new_index.  The old table is freed afterwards.  *end is the first
 * cluster after the new structures.
 */
static int
grow_reftable (struct layout *l, uint64_t start, uint64_t additional,
               bool exact, uint64_t new_index, uint64_t new_block,
               uint64_t *end_ret)
{
  uint64_t cs = l->cluster_size;
  uint64_t entries_per_cluster = cs / REFTABLE_ENTRY_SIZE;
  uint64_t refblock_entries = UINT64_C (1) << l->refblock_bits;
  uint64_t total, table_size, table_clusters, area_index, i, block;
  uint64_t table_start, end, old_offset, old_clusters;
  uint64_t *table;
  struct stale_table *stale;

  total = refblocks_needed (start + additional, cs, refblock_entries, !exact);
  table_size = exact ? total : total + DIV_ROUND_UP (total, 2);
  table_size = ROUND_UP (table_size, entries_per_cluster);
  if (table_size * REFTABLE_ENTRY_SIZE > MAX_REFTABLE_BYTES) {
    diag_error ("create: the refcount table would exceed %d bytes "
                "(try a larger cluster size)", MAX_REFTABLE_BYTES);
    errno = EFBIG;
    return -1;
  }
  if (new_block && new_index >= total) {
    diag_error ("create: internal error: refcount block %" PRIu64
                " outside the new table", new_index);
    errno = EIO;
    return -1;
  }
  table_clusters = table_size / entries_per_cluster;
  area_index = start >> l->refblock_bits;

  table = calloc (table_size, sizeof *table);
  if (table == NULL)
    return no_memory ();
  memcpy (table, l->reftable,
          MIN (table_size, l->reftable_entries) * sizeof *table);
  if (new_block)
    table[new_index] = new_block << l->cluster_bits;

  /* The new blocks come first, then the table. */
  table_start = start;
  for (i = area_index; i < total; i++)
    if (table[i] == 0)
      table_start++;
  end = table_start + table_clusters;
  if (end > l->max_clusters) {
    free (table);
    return too_big ();
  }

  block = start;
  for (i = area_index; i < total; i++) {
    uint64_t first_covered = i * refblock_entries, j;

    if (table[i] == 0) {
      table[i] = block << l->cluster_bits;
      written (l, block << l->cluster_bits, cs);
      block++;
    }
    for (j = MAX (first_covered, start);
         j < MIN (end, first_covered + refblock_entries); j++) {
      if (is_used (l, j)) {
        free (table);
        diag_error ("create: internal error: cluster %" PRIu64
                    " is already in use", j);
        errno = EIO;
        return -1;
      }
      if (set_used (l, j, true) == -1) {
        free (table);
        return -1;
      }
    }
  }
  written (l, table_start << l->cluster_bits, table_size * REFTABLE_ENTRY_SIZE);

  /* Switch, keeping the old table's bytes for the file. */
  stale = realloc (l->stale, (l->nr_stale + 1) * sizeof *stale);
  if (stale == NULL) {
    free (table);
    return no_memory ();
  }
  l->stale = stale;
  l->stale[l->nr_stale++] = (struct stale_table) {
    .offset = l->reftable_offset,
    .entries = l->reftable,
    .nr_entries = l->reftable_entries,
  };
  old_offset = l->reftable_offset;
  old_clusters = l->reftable_entries / entries_per_cluster;
  l->reftable = table;
  l->reftable_entries = table_size;
  l->reftable_offset = table_start << l->cluster_bits;

  *end_ret = end;
  return update_refcounts (l, old_offset >> l->cluster_bits, old_clusters,
                           false);
}

/* QEMU's alloc_refcount_block: make sure the refcount block covering
 * `cluster` exists.  Returns 0 if it did, or -1 with errno EAGAIN after
 * making one (the caller must search for its free clusters again,
 * because the new block may have taken one of them), or another error.
 */
static int
ensure_refblock (struct layout *l, uint64_t cluster)
{
  uint64_t index = cluster >> l->refblock_bits;
  uint64_t block, blocks_used, end;

  if (index < l->reftable_entries && l->reftable[index])
    return 0;

  if (find_free (l, 1, &block) == -1)
    return -1;
  if (block >> l->refblock_bits == index) {
    /* The block describes itself. */
    if (set_used (l, block, true) == -1)
      return -1;
  }
  else if (update_refcounts (l, block, 1, true) == -1)
    return -1;
  written (l, block << l->cluster_bits, l->cluster_size);

  if (index < l->reftable_entries)
    l->reftable[index] = block << l->cluster_bits;
  else {
    /* The table is full: new refcount structures go after the groups
     * of clusters in use so far, which end at `cluster` or at the new
     * block, whichever is further.
     */
    blocks_used = DIV_ROUND_UP (MAX (cluster, block) + 1,
                                UINT64_C (1) << l->refblock_bits);
    if (grow_reftable (l, blocks_used << l->refblock_bits, 0, false,
                       index, block, &end) == -1)
      return -1;
  }
  errno = EAGAIN;
  return -1;
}

/* QEMU's update_refcount, for +1 and -1.  A failure undoes what was
 * done; EAGAIN makes the allocator look again from `first`.
 */
static int
update_refcounts (struct layout *l, uint64_t first, uint64_t n, bool increase)
{
  uint64_t c, group = UINT64_MAX;

  for (c = first; c < first + n; c++) {
    if (c >> l->refblock_bits != group) {
      if (ensure_refblock (l, c) == -1) {
        int e = errno;

        if (e == EAGAIN && l->free_index > first)
          l->free_index = first;
        if (c > first)
          update_refcounts (l, first, c - first, !increase);
        errno = e;
        return -1;
      }
      group = c >> l->refblock_bits;
    }
    if (is_used (l, c) == increase) {
      diag_error ("create: internal error: refcount of cluster %" PRIu64
                  " out of range", c);
      errno = EIO;
      return -1;
    }
    if (set_used (l, c, increase) == -1)
      return -1;
    if (!increase && c < l->free_index)
      l->free_index = c;
  }
  return 0;
}

/* QEMU's qcow2_alloc_clusters: n clusters, wherever they fit. */
static int
alloc_clusters (struct layout *l, uint64_t n, uint64_t *first)
{
  for (;;) {
    if (find_free (l, n, first) == -1)
      return -1;
    if (update_refcounts (l, *first, n, true) == 0)
      return 0;
    if (errno != EAGAIN)
      return -1;
  }
}

/* QEMU's qcow2_alloc_clusters_at: as many of the n clusters from
 * `first` on as are free, in a row.  Returns the count, or -1.
 */
static int64_t
alloc_clusters_at (struct layout *l, uint64_t first, uint64_t n)
{
  uint64_t i;

  for (;;) {
    for (i = 0; i < n && !is_used (l, first + i); i++)
      ;
    if (update_refcounts (l, first, i, true) == 0)
      return i;
    if (errno != EAGAIN)
      return -1;
  }
}

static int
layout_init (struct layout *l, uint32_t cluster_size, unsigned refcount_bits,
             bool extended_l2)
{
  uint64_t first;

  memset (l, 0, sizeof *l);
  l->cluster_bits = __builtin_ctz (cluster_size);
  l->cluster_size = cluster_size;
  l->refblock_bits = l->cluster_bits + 3 - __builtin_ctz (refcount_bits);
  l->l2_bits = l->cluster_bits - (extended_l2 ? 4 : 3);
  l->max_clusters = (MAX_HOST_OFFSET + 1) >> l->cluster_bits;

  /* qcow2_co_create writes the header in cluster 0, a one-cluster
   * refcount table in cluster 1 pointing at an empty refcount block in
   * cluster 2, and then allocates those three clusters.
   */
  l->reftable_entries = cluster_size / REFTABLE_ENTRY_SIZE;
  l->reftable = calloc (l->reftable_entries, sizeof *l->reftable);
  if (l->reftable == NULL)
    return no_memory ();
  l->reftable[0] = 2 * l->cluster_size;
  l->reftable_offset = l->cluster_size;
  written (l, 0, 3 * l->cluster_size);
  if (alloc_clusters (l, 3, &first) == -1)
    return -1;
  return 0;
}

static void
layout_free (struct layout *l)
{
  size_t i;

  for (i = 0; i < l->nr_stale; i++)
    free (l->stale[i].entries);
  free (l->stale);
  free (l->refcount);
  free (l->reftable);
  free (l->l1);
  free (l->runs);
}

/* QEMU's qcow2_grow_l1_table, from an empty table, as the truncate to
 * the virtual size does it.
 */
static int
make_l1 (struct layout *l, uint64_t size)
{
  uint64_t span = UINT64_C (1) << (l->cluster_bits + l->l2_bits);
  uint64_t first;

  l->l1_size = DIV_ROUND_UP (size, span);
  if (l->l1_size == 0)
    return 0;
  if (l->l1_size * L1_ENTRY_SIZE > MAX_L1_BYTES) {
    diag_error ("The image size is too large for file format 'qcow2' "
                "(try using a larger cluster size)");
    errno = EFBIG;
    return -1;
  }
  l->l1 = calloc (l->l1_size, sizeof *l->l1);
  if (l->l1 == NULL)
    return no_memory ();
  if (alloc_clusters (l, DIV_ROUND_UP (l->l1_size * L1_ENTRY_SIZE,
                                       l->cluster_size), &first) == -1)
    return -1;
  l->l1_offset = first << l->cluster_bits;
  written (l, l->l1_offset, l->l1_size * L1_ENTRY_SIZE);
  return 0;
}

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
      return no_memory ();
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
  if (alloc_clusters (l, 1, &table) == -1)
    return -1;
  l->l1[index] = table << l->cluster_bits;
  written (l, l->l1[index], l->cluster_size);
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
      if (alloc_clusters (l, n, &first) == -1)
        return -1;
    }
    else {
      int64_t r;

      first = next >> l->cluster_bits;
      r = alloc_clusters_at (l, first, n);
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

static int
preallocate (struct layout *l, bool external_data, uint64_t size)
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
static int
preallocate_data (struct layout *l, uint64_t size)
{
  uint64_t l2_entries = UINT64_C (1) << l->l2_bits;
  uint64_t end, n_data, n_l2, start, guest, n;
  int64_t got;

  n_data = DIV_ROUND_UP (size, l->cluster_size);

  /* The file ends after its last cluster in use. */
  for (end = DIV_ROUND_UP (l->file_end, l->cluster_size);
       end > 0 && !is_used (l, end - 1); end--)
    ;
  if (end == 0)
    end = DIV_ROUND_UP (l->file_end, l->cluster_size);

  /* Room for a head and a tail L2 table that only partly cover data. */
  n_l2 = DIV_ROUND_UP (n_data, l2_entries) + 1;
  if (grow_reftable (l, end, n_data + n_l2, true, 0, 0, &start) == -1)
    return -1;
  got = alloc_clusters_at (l, start, n_data);
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

/* ---------------------------------------------------------------------
 * Encryption: QEMU's qcow2_set_up_encryption, which runs after the
 * truncate (and preallocation).  For LUKS it gives the LUKS1 header and
 * its key material whole clusters of their own (zero-filled), named by
 * the "Full disk encryption header pointer" extension with the header's
 * exact length.  QEMU's defaults are the LUKS library's: aes-xts-plain64
 * with a 512-bit key, sha256.
 */

static void
luks_params (const struct qcow2_create_options *o,
             struct luks_format_params *p)
{
  memset (p, 0, sizeof *p);
  p->iter_time_ms = o->encrypt_iter_time;
}

static int
alloc_luks_area (struct layout *l, const struct qcow2_create_options *o)
{
  struct luks_format_params p;
  uint64_t length, clusters, first;

  luks_params (o, &p);
  if (luks_format_length (&p, &length) == -1)
    return -1;
  clusters = DIV_ROUND_UP (length, l->cluster_size);
  if (alloc_clusters (l, clusters, &first) == -1)
    return -1;
  l->crypto_offset = first << l->cluster_bits;
  l->crypto_length = length;
  written (l, l->crypto_offset, clusters << l->cluster_bits);
  return 0;
}

static int
write_luks_header (struct io *io, const struct qcow2_create_options *o,
                   const struct layout *l)
{
  struct luks_format_params p;
  struct luks_volume *v;

  luks_params (o, &p);
  v = luks_format (io, l->crypto_offset, &p, o->passphrase,
                   strlen (o->passphrase));
  if (v == NULL)
    return -1;
  luks_close (v);
  return 0;
}

/* ---------------------------------------------------------------------
 * Cluster 0: the header, its extensions ("Header extensions") and the
 * backing file name.
 */

struct feature {
  uint8_t type, bit;
  const char *name;
};

/* "Feature name table": what QEMU 7.2 writes, in its order. */
static const struct feature feature_names[] = {
  { 0, 0, "dirty bit" },
  { 0, 1, "corrupt bit" },
  { 0, 2, "external data file" },
  { 0, 3, "compression type" },
  { 0, 4, "extended L2 entries" },
  { 1, 0, "lazy refcounts" },
  { 2, 0, "bitmaps" },
  { 2, 1, "raw external data" },
};
#define NR_FEATURES (sizeof feature_names / sizeof feature_names[0])
#define FEATURE_ENTRY_SIZE 48

/* Append one extension at *pos; fails if it does not fit. */
static bool
add_extension (unsigned char *c0, uint64_t cs, uint64_t *pos,
               uint32_t magic, const void *data, uint32_t len)
{
  uint64_t padded = ROUND_UP ((uint64_t) len, 8);

  if (*pos + 8 + padded > cs)
    return false;
  store_be32 (c0 + *pos, magic);
  store_be32 (c0 + *pos + 4, len);
  if (len)
    memcpy (c0 + *pos + 8, data, len);
  *pos += 8 + padded;
  return true;
}

static int
build_header (const struct qcow2_create_options *o, const struct layout *l,
              uint64_t size, unsigned refcount_bits, unsigned char *c0)
{
  uint64_t cs = l->cluster_size, pos;
  uint64_t incompat = 0, compat = 0, autoclear = 0;
  bool ok = true;

  store_be32 (c0 + HDR_MAGIC, QCOW2_MAGIC);
  store_be32 (c0 + HDR_VERSION, o->version);
  store_be32 (c0 + HDR_CLUSTER_BITS, l->cluster_bits);
  store_be64 (c0 + HDR_SIZE, size);
  store_be32 (c0 + HDR_CRYPT_METHOD,
              o->encrypt == QCOW2_ENCRYPT_LUKS ? CRYPT_LUKS
              : o->encrypt == QCOW2_ENCRYPT_AES ? CRYPT_AES : CRYPT_NONE);
  store_be32 (c0 + HDR_L1_SIZE, l->l1_size);
  store_be64 (c0 + HDR_L1_TABLE_OFFSET, l->l1_offset);
  store_be64 (c0 + HDR_REFCOUNT_TABLE_OFFSET, l->reftable_offset);
  store_be32 (c0 + HDR_REFCOUNT_TABLE_CLUSTERS,
              l->reftable_entries * REFTABLE_ENTRY_SIZE / cs);

  if (o->version == 2)
    pos = HDR_V2_LENGTH;
  else {
    if (o->data_file)
      incompat |= INCOMPAT_DATA_FILE;
    if (o->compression_type != 0)
      incompat |= INCOMPAT_COMPRESSION;
    if (o->extended_l2)
      incompat |= INCOMPAT_EXTL2;
    if (o->lazy_refcounts)
      compat |= COMPAT_LAZY_REFCOUNTS;
    if (o->data_file_raw)
      autoclear |= AUTOCLEAR_DATA_FILE_RAW;
    store_be64 (c0 + HDR_INCOMPATIBLE, incompat);
    store_be64 (c0 + HDR_COMPATIBLE, compat);
    store_be64 (c0 + HDR_AUTOCLEAR, autoclear);
    store_be32 (c0 + HDR_REFCOUNT_ORDER, __builtin_ctz (refcount_bits));
    store_be32 (c0 + HDR_HEADER_LENGTH, HDR_V3_LENGTH);
    c0[HDR_COMPRESSION_TYPE] = o->compression_type;
    pos = HDR_V3_LENGTH;
  }

  if (o->backing_format)
    ok = ok && add_extension (c0, cs, &pos, EXT_BACKING_FORMAT,
                              o->backing_format, strlen (o->backing_format));
  if (o->data_file)
    ok = ok && add_extension (c0, cs, &pos, EXT_DATA_FILE,
                              o->data_file, strlen (o->data_file));
  if (o->encrypt == QCOW2_ENCRYPT_LUKS) {
    unsigned char ptr[16];

    store_be64 (ptr, l->crypto_offset);
    store_be64 (ptr + 8, l->crypto_length);
    ok = ok && add_extension (c0, cs, &pos, EXT_CRYPTO_HEADER, ptr, sizeof ptr);
  }
  if (o->version >= 3 && cs >= FEATURE_TABLE_MIN_CLUSTER) {
    unsigned char table[NR_FEATURES * FEATURE_ENTRY_SIZE];
    size_t i;

    memset (table, 0, sizeof table);
    for (i = 0; i < NR_FEATURES; i++) {
      unsigned char *e = table + i * FEATURE_ENTRY_SIZE;

      e[0] = feature_names[i].type;
      e[1] = feature_names[i].bit;
      memcpy (e + 2, feature_names[i].name, strlen (feature_names[i].name));
    }
    ok = ok && add_extension (c0, cs, &pos, EXT_FEATURE_TABLE,
                              table, sizeof table);
  }
  /* The end marker: eight zero bytes, already there. */
  ok = ok && pos + 8 <= cs;
  pos += 8;

  if (ok && o->backing_file) {
    size_t len = strlen (o->backing_file);

    ok = pos + len <= cs;
    if (ok) {
      store_be64 (c0 + HDR_BACKING_FILE_OFFSET, pos);
      store_be32 (c0 + HDR_BACKING_FILE_SIZE, len);
      memcpy (c0 + pos, o->backing_file, len);
    }
  }
  if (!ok) {
    diag_error ("create: the backing file and data file names do not fit "
                "in the first cluster (%" PRIu64 " bytes); use shorter "
                "names or a larger cluster size", cs);
    errno = ENOSPC;
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------------
 * Writing the model out.
 */

static void
store_refcount (unsigned char *block, uint64_t index, unsigned bits)
{
  if (bits >= 8)
    /* Big-endian value 1 in a field of bits / 8 bytes. */
    block[(index + 1) * (bits / 8) - 1] = 1;
  else
    /* Narrow fields are packed from the least significant bit. */
    block[index * bits / 8] |= 1u << (index * bits % 8);
}

static int
write_refblocks (struct io *io, const struct layout *l, unsigned refcount_bits,
                 unsigned char *buf)
{
  uint64_t entries = UINT64_C (1) << l->refblock_bits, i, j;

  for (i = 0; i < l->reftable_entries; i++) {
    if (l->reftable[i] == 0)
      continue;
    memset (buf, 0, l->cluster_size);
    for (j = 0; j < entries; j++)
      if (is_used (l, i * entries + j))
        store_refcount (buf, j, refcount_bits);
    if (io_pwrite (io, buf, l->cluster_size, l->reftable[i]) == -1)
      return -1;
  }
  return 0;
}

static int
write_table (struct io *io, const uint64_t *entries, uint64_t n,
             uint64_t flags, uint64_t offset)
{
  CLEANUP_FREE unsigned char *buf = malloc (n * 8);
  uint64_t i;

  if (buf == NULL)
    return no_memory ();
  for (i = 0; i < n; i++)
    store_be64 (buf + i * 8, entries[i] ? entries[i] | flags : 0);
  return io_pwrite (io, buf, n * 8, offset);
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

static int
write_image (struct io *io, const struct qcow2_create_options *o,
             const struct layout *l, uint64_t size, unsigned refcount_bits)
{
  CLEANUP_FREE unsigned char *buf = calloc (1, l->cluster_size);
  size_t i;

  if (buf == NULL)
    return no_memory ();

  for (i = 0; i < l->nr_stale; i++)
    if (write_table (io, l->stale[i].entries, l->stale[i].nr_entries, 0,
                     l->stale[i].offset) == -1)
      return -1;

  if (build_header (o, l, size, refcount_bits, buf) == -1 ||
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
      (o->encrypt == QCOW2_ENCRYPT_LUKS && write_luks_header (io, o, l) == -1))
    return -1;
  if (io_truncate (io, l->file_end) == -1)
    return -1;
  return io_flush (io);
}

/* Make the new directory entries durable too. */
static int
sync_directory (const char *filename)
{
  CLEANUP_FREE char *copy = strdup (filename);
  int fd, r;

  if (copy == NULL)
    return no_memory ();
  fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1)
    return 0;                   /* nothing we can do; not fatal */
  r = fsync (fd);
  close (fd);
  if (r == -1 && errno != EINVAL) {
    diag_error ("create: fsync of the directory of %s: %m", filename);
    return -1;
  }
  return 0;
}

/* preallocation=falloc|full: the file system allocates the range (the
 * bytes stay zero, so this is all "full" needs to add too).
 */
static int
allocate_range (int fd, const char *name, uint64_t offset, uint64_t length)
{
  int r;

  if (length == 0)
    return 0;
  r = posix_fallocate (fd, offset, length);
  if (r != 0) {
    errno = r;
    diag_error ("create: %s: could not preallocate: %m", name);
    errno = r;
    return -1;
  }
  return 0;
}

/* The external data file: empty, as long as the disk (or its last
 * preallocated cluster).  Refuses to touch an existing file: QEMU would
 * truncate it, throwing its contents away.
 */
static int
create_data_file (const struct qcow2_create_options *o, uint64_t length,
                  bool allocate)
{
  int fd = open (o->data_file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  struct io *io;
  int r;

  if (fd == -1) {
    int e = errno;

    if (e == EEXIST)
      diag_error ("create: data file %s already exists; it is not "
                  "overwritten (remove it first)", o->data_file);
    else
      diag_error ("create: could not create data file %s: %m", o->data_file);
    errno = e;
    return -1;
  }
  io = io_fd_wrap (fd, o->data_file, false);
  if (io == NULL) {
    close (fd);
    return -1;
  }
  r = io_truncate (io, length) == -1 ||
    (allocate && allocate_range (fd, o->data_file, 0, length) == -1) ||
    io_flush (io) == -1 ? -1 : 0;
  io_close (io);
  return r;
}

int
qcow2_create (const struct qcow2_create_options *opts)
{
  struct qcow2_create_options o = *opts;
  uint32_t cluster_size = o.cluster_size ? o.cluster_size : DEFAULT_CLUSTER_SIZE;
  unsigned refcount_bits = o.refcount_bits ? o.refcount_bits : DEFAULT_REFCOUNT_BITS;
  uint64_t size = o.size, backing_size;
  struct layout l;
  struct io *io = NULL;
  bool data_created = false, allocate;
  int fd, r = -1, e;

  if (o.version == 0)
    o.version = 3;
  if (check_options (&o, cluster_size, refcount_bits) == -1)
    return -1;
  if (o.backing_file) {
    if (probe_backing (&o, &backing_size) == -1)
      return -1;
    if (o.size_from_backing) {
      if (backing_size == INVALID)
        return invalid ("create: the size of a backing file in this format "
                        "is not known; give the size");
      size = backing_size;
    }
  }
  /* qemu-img counts in 512-byte sectors. */
  if (size > INT64_MAX - 511)
    return invalid ("create: the virtual size is too large");
  size = ROUND_UP (size, 512);
  /* A raw data file is mapped one to one, which QEMU does by
   * preallocating the metadata.
   */
  if (o.data_file_raw && o.preallocation == QCOW2_PREALLOC_OFF)
    o.preallocation = QCOW2_PREALLOC_METADATA;

  if (layout_init (&l, cluster_size, refcount_bits, o.extended_l2) == -1)
    goto out;
  l.data_end = size;
  if (make_l1 (&l, size) == -1)
    goto out;
  allocate = o.preallocation == QCOW2_PREALLOC_FALLOC ||
    o.preallocation == QCOW2_PREALLOC_FULL;
  if (o.preallocation == QCOW2_PREALLOC_METADATA ||
      (allocate && o.data_file != NULL)) {
    /* With a data file, QEMU preallocates the metadata and leaves the
     * rest to the data file.
     */
    if (preallocate (&l, o.data_file != NULL, size) == -1)
      goto out;
  }
  else if (allocate && preallocate_data (&l, size) == -1)
    goto out;
  if (o.encrypt == QCOW2_ENCRYPT_LUKS && alloc_luks_area (&l, &o) == -1)
    goto out;

  fd = open (o.filename, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd == -1) {
    diag_error ("create: %s: %m", o.filename);
    goto out;
  }
  io = io_fd_wrap (fd, o.filename, false);
  if (io == NULL) {
    close (fd);
    unlink (o.filename);
    goto out;
  }
  if (allocate_range (fd, o.filename, l.falloc_start, l.falloc_length) == -1)
    goto out;
  if (o.data_file) {
    if (create_data_file (&o, l.data_end, allocate) == -1)
      goto out;
    data_created = true;
  }
  if (write_image (io, &o, &l, size, refcount_bits) == -1 ||
      sync_directory (o.filename) == -1 ||
      (o.data_file && sync_directory (o.data_file) == -1))
    goto out;
  diag_debug ("created %s: %" PRIu64 " bytes, %" PRIu64 " bytes of metadata",
              o.filename, size, l.file_end);
  r = 0;

 out:
  e = errno;
  if (io) {
    io_close (io);
    if (r == -1)
      unlink (o.filename);
  }
  if (r == -1 && data_created)
    unlink (o.data_file);
  layout_free (&l);
  errno = e;
  return r;
}
