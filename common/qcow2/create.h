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
 * The steps, one file each:
 *   create-options.c   checking the options, probing the backing file
 *   create-layout.c    the model of QEMU's allocator; the L1 table
 *   create-prealloc.c  preallocation=metadata|falloc|full
 *   create-luks.c      the LUKS header's clusters, and the header
 *   create-header.c    cluster 0: header, extensions, backing name
 *   create-write.c     writing the model out
 *   create.c           qcow2_create_on: the steps in QEMU's order
 *   local-create.c     qcow2_create: the files, by path (libqcow2-local)
 *
 * Format references are to docs/interop/qcow2.txt in QEMU's sources.
 */
#ifndef QCOW2_CREATE_H
#define QCOW2_CREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "minmax.h"
#include "qcow2.h"

struct io;

#define DEFAULT_CLUSTER_SIZE   65536
#define DEFAULT_REFCOUNT_BITS  16
#define INVALID                UINT64_MAX

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

/* The model's refcount of a cluster: 0 or 1. */
static inline bool
layout_is_used (const struct layout *l, uint64_t cluster)
{
  return cluster < l->refcount_cap &&
    (l->refcount[cluster / 8] & (1u << (cluster % 8)));
}

/* QEMU's file grows to cover every byte it writes. */
static inline void
layout_written (struct layout *l, uint64_t offset, uint64_t length)
{
  l->file_end = MAX (l->file_end, offset + length);
}

/* create-options.c */
extern int create_invalid (const char *what);
/* The rules, in the same words, as qemu-img's qcow2_co_create. */
extern int create_check_options (const struct qcow2_create_options *o,
                                 uint32_t cluster_size,
                                 unsigned refcount_bits);
/* The backing file's virtual size, or INVALID if its format hides it. */
extern int create_probe_backing (const struct qcow2_create_options *o,
                                 struct io *io, uint64_t *size);

/* create-layout.c */
extern int create_no_memory (void);
extern int layout_init (struct layout *l, uint32_t cluster_size,
                        unsigned refcount_bits, bool extended_l2);
extern void layout_free (struct layout *l);
extern int layout_alloc_clusters (struct layout *l, uint64_t n,
                                  uint64_t *first);
extern int64_t layout_alloc_clusters_at (struct layout *l, uint64_t first,
                                         uint64_t n);
extern int layout_grow_reftable (struct layout *l, uint64_t start,
                                 uint64_t additional, bool exact,
                                 uint64_t new_index, uint64_t new_block,
                                 uint64_t *end_ret);
extern int layout_make_l1 (struct layout *l, uint64_t size);

/* create-prealloc.c */
extern int layout_preallocate (struct layout *l, bool external_data,
                               uint64_t size);
extern int layout_preallocate_data (struct layout *l, uint64_t size);

/* create-luks.c */
extern int layout_alloc_luks_area (struct layout *l,
                                   const struct qcow2_create_options *o);
extern int create_write_luks_header (struct io *io,
                                     const struct qcow2_create_options *o,
                                     const struct layout *l);

/* create-header.c: cluster 0 into c0 (cluster_size bytes, zeroed). */
extern int create_build_header (const struct qcow2_create_options *o,
                                const struct layout *l, uint64_t size,
                                unsigned refcount_bits, unsigned char *c0);

/* create-write.c */
extern int create_write_image (struct io *io,
                               const struct qcow2_create_options *o,
                               const struct layout *l, uint64_t size,
                               unsigned refcount_bits);
/* Fail with ENOSPC where io cannot grow to hold the image of l. */
extern int create_check_room (struct io *io, const struct layout *l);
extern int create_allocate_range (struct io *io, uint64_t offset,
                                  uint64_t length);
extern int create_data_file (struct io *io, uint64_t length, bool allocate);

#endif /* QCOW2_CREATE_H */
