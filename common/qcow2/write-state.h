/* State the write path keeps beside struct qcow2_image.  Everything
 * here is guarded by img->meta_lock held exclusively.
 */
#ifndef QCOW2_WRITE_STATE_H
#define QCOW2_WRITE_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* A range of guest clusters whose allocation is under way: its data is
 * being written outside the lock and its L2 entries are not updated
 * yet.  Other requests touching it wait.
 */
struct inflight {
  uint64_t first, end;          /* guest cluster indices, [first, end) */
  struct inflight *next;
};

struct write_state {
  /* Refcounts ("Host cluster management" in qcow2.txt). */
  struct meta_cache *refblock_cache;
  uint64_t *reftable;           /* host byte order */
  uint64_t reftable_entries;
  uint64_t reftable_offset;     /* where the table lives (or will) */
  bool reftable_dirty;
  bool reftable_moved;          /* grown: the header must point at it */
  unsigned rb_bits;             /* log2 of refcount entries per block */
  uint64_t refcount_max;
  uint64_t free_hint;           /* no free cluster below this index */
  uint64_t end_cluster;         /* first cluster index past everything */
  /* Where the file cannot grow (io fixed_size): the first cluster index
   * past its end, which nothing may reach (ENOSPC); else UINT64_MAX.
   */
  uint64_t limit_cluster;

  /* Refcount drops wait until the pointers that used the clusters are
   * gone on disk (the ordering rules in writeback.c), so freed clusters
   * are not reused before a checkpoint either.
   */
  uint64_t *pending;            /* cluster indices */
  size_t nr_pending, cap_pending;

  /* Active L1 entries changed since the last checkpoint: [first, end),
   * empty when first >= end.
   */
  uint64_t l1_dirty_first, l1_dirty_end;
  struct inflight *inflight;
  pthread_mutex_t inflight_lock;  /* guards inflight_gen for waiters */
  pthread_cond_t inflight_done;
  uint64_t inflight_gen;          /* bumped whenever one finishes */

  /* Compressed clusters are packed byte by byte (compressed-write.c):
   * where the next may start, inside a host cluster that already holds
   * compressed data; 0 = in a fresh cluster.  Reset when that cluster
   * is freed.
   */
  uint64_t compressed_next;

  /* The host clusters that hold metadata (overlap.c). */
  struct overlap_index *overlap;

  bool set_dirty_bit;           /* we set INCOMPAT_DIRTY (lazy refcounts) */
  bool corrupt;                 /* corruption found (sets error too) */

  /* Errors are sticky, as a failed fsync must be taken on Linux (the
   * kernel may have dropped the dirty pages it could not write, and
   * reports that once).  0, or the errno of the first failure that may
   * have lost written data or left the metadata half changed:
   *   - any failure of a checkpoint: writing back refcount blocks, the
   *     refcount table, L2 tables, the L1 table or the header, reading
   *     a refcount block to apply a release, or an fdatasync of the
   *     image or the external data file;
   *   - the image found corrupt (write_corrupt, EIO);
   *   - any other failure of a request's metadata step (planning,
   *     allocation, the commit of L2 entries, zeroing, placing
   *     compressed clusters) or of a write of guest data (plain,
   *     encrypted, compressed), even one that changed nothing: it is
   *     not worth proving which did;
   * except a lack of room (write_failed_no_room): ENOSPC, EDQUOT or
   * EFBIG from a write of guest data, a claim of file space for new
   * metadata or the refcount table size cap.  The file system refuses
   * those bytes before it takes them, the new clusters stay unused (a
   * leak), and where a claim deep in an allocation would leave the
   * refcounts half changed (refcount.c) it latches here itself.  So
   * only the request fails (its range holds old, new or partly new
   * data) and the image goes on once there is space again.  Reads
   * that fail (guest data, or what copy-on-write copies) change
   * nothing and are not sticky; nor is a failed punch of freed
   * clusters (only their space stays allocated).
   *
   * Once set, for the life of the image: writes, zeroes and trims fail
   * at once; nothing more is written back (the metadata in memory may
   * be half changed, and a corrupt image must not be written, as in
   * QEMU); every flush and FUA request and qcow2_close fail with this
   * errno (EIO, or the lack of room as it was), though a flush still
   * syncs what already reached the files.  Reads go on, from the cache.
   * A write acknowledged without FUA since the last successful flush
   * may be lost then, but never silently: the next flush says so.
   * Nothing a successful flush or FUA request covered is lost.
   */
  int error;
};

/* refcount.c */
extern int refcount_init (struct qcow2_image *img);
extern void refcount_fini (struct qcow2_image *img);
extern int refcount_get (struct qcow2_image *img, uint64_t cluster,
                         uint64_t *value);
/* The same for a cluster the image uses: a refcount of 0 there is
 * corruption (the image is marked corrupt and -1 returned).
 */
extern int refcount_get_in_use (struct qcow2_image *img, uint64_t cluster,
                                uint64_t *value);
extern int refcount_set (struct qcow2_image *img, uint64_t cluster,
                         uint64_t value);
/* Allocate n contiguous clusters (n <= refcount_max_run) with refcount
 * 1; returns the host offset or -1.
 */
extern int64_t refcount_alloc (struct qcow2_image *img, uint64_t n);
extern uint64_t refcount_max_run (const struct qcow2_image *img);
/* The same for any n, past the end of everything (a large table). */
extern int64_t refcount_alloc_at_end (struct qcow2_image *img, uint64_t n);
/* Drop one reference from every cluster touched by [offset, +bytes),
 * at the next checkpoint.
 */
extern int refcount_release (struct qcow2_image *img, uint64_t offset,
                             uint64_t bytes);
extern int refcount_apply_releases (struct qcow2_image *img);
extern int refcount_writeback (struct qcow2_image *img);

/* write.c, shared with zero.c (and the compressed writer). */
extern int write_check_locked (struct qcow2_image *img);
extern bool inflight_overlaps (const struct write_state *w, uint64_t first,
                               uint64_t end);
/* Mark guest clusters [first, end) in flight / done (wakes waiters). */
extern void inflight_add (struct write_state *w, struct inflight *i,
                          uint64_t first, uint64_t end);
extern void inflight_remove (struct write_state *w, struct inflight *done);
/* Wait for an in-flight run to finish (drops and retakes meta_lock). */
extern void inflight_wait (struct qcow2_image *img);
/* Note that active L1 entry i changed (written at the next checkpoint). */
static inline void
l1_mark_dirty (struct write_state *w, uint64_t i)
{
  if (w->l1_dirty_first >= w->l1_dirty_end) {
    w->l1_dirty_first = i;
    w->l1_dirty_end = i + 1;
  }
  else {
    w->l1_dirty_first = i < w->l1_dirty_first ? i : w->l1_dirty_first;
    w->l1_dirty_end = i + 1 > w->l1_dirty_end ? i + 1 : w->l1_dirty_end;
  }
}
/* The L2 table for l1_index, private to the active L1, pinned. */
extern int l2_for_write (struct qcow2_image *img, uint64_t l1_index,
                         struct meta_table **t);
extern void l2_store_entry (struct qcow2_image *img, struct meta_table *t,
                            uint64_t index, uint64_t entry, uint64_t bitmap);
/* The host bytes an entry holds in the image file (refcounted): false
 * for none (unallocated, zero without a cluster, an external data file).
 */
extern bool l2_entry_host_range (const struct qcow2_image *img,
                                 const struct l2_entry *d,
                                 uint64_t *host, uint64_t *len);
/* Release the clusters an entry points at (deferred). */
extern int l2_release_entry (struct qcow2_image *img,
                             const struct l2_entry *d);

/* compressed-write.c: qcow2_pwrite with QCOW2_COMPRESSED. */
extern int compressed_pwrite (struct qcow2_image *img, const void *buf,
                              uint64_t count, uint64_t offset, unsigned flags);

/* write-error.c: latch a failure in errno as the sticky error (kept
 * if one is latched already); both return -1 with errno unchanged.
 * The second latches nothing for a lack of room (see error above).
 */
extern int write_failed (struct qcow2_image *img);
extern int write_failed_no_room (struct qcow2_image *img);
/* The same for a write of guest data, made without the metadata lock. */
extern int data_write_failed (struct qcow2_image *img);
/* Fail (-1, errno) once an error is latched. */
extern int write_error_check (struct qcow2_image *img);

/* metadata.c: every range of the file that holds metadata, in QEMU's
 * overlap-check categories.  fn is called once for each reference (a
 * table named twice is reported twice); a non-zero return stops the
 * walk and is returned.
 */
enum metadata_kind {
  MD_HEADER,                    /* cluster 0: header and extensions */
  MD_ACTIVE_L1,
  MD_ACTIVE_L2,
  MD_REFTABLE,
  MD_REFBLOCK,
  MD_SNAPSHOT_TABLE,
  MD_INACTIVE_L1,               /* snapshots' */
  MD_INACTIVE_L2,               /* read from the file */
  MD_CRYPTO_HEADER,
};
#define MD_BIT(kind) (1u << (kind))
#define MD_ALL       ((MD_BIT (MD_CRYPTO_HEADER) << 1) - 1)
/* QEMU's default overlap-check=cached: all but what must be read. */
#define MD_CACHED    (MD_ALL & ~MD_BIT (MD_INACTIVE_L2))
typedef int (*metadata_fn) (struct qcow2_image *img, enum metadata_kind kind,
                            uint64_t offset, uint64_t bytes, void *opaque);
extern int metadata_for_each (struct qcow2_image *img, unsigned kinds,
                              metadata_fn fn, void *opaque);
extern const char *metadata_kind_name (enum metadata_kind kind);

/* overlap.c: the index of metadata clusters, filled by refcount_init,
 * and the check every in-place write, allocation and release passes
 * (a hit marks the image corrupt).  overlap_add / overlap_remove count
 * one reference more or less to each cluster of a range, as tables are
 * allocated, moved and dropped.
 */
extern int overlap_index_build (struct qcow2_image *img);
extern void overlap_index_free (struct qcow2_image *img);
extern int overlap_add (struct qcow2_image *img, uint64_t offset,
                        uint64_t bytes);
extern void overlap_remove (struct qcow2_image *img, uint64_t offset,
                            uint64_t bytes);
extern int check_no_overlap (struct qcow2_image *img, uint64_t offset,
                             uint64_t bytes);
/* The first cluster index past every cluster in the index. */
extern uint64_t overlap_end (const struct qcow2_image *img);

/* repair.c: rebuild every refcount from the metadata (a dirty image). */
extern int refcount_rebuild (struct qcow2_image *img);

/* writeback.c */
/* Make everything so far durable, in crash-safe order, then apply the
 * deferred refcount drops.
 */
extern int checkpoint (struct qcow2_image *img);
extern int checkpoint_if_needed (struct qcow2_image *img);
/* Mark the image corrupt on disk and refuse further writes. */
extern int write_corrupt (struct qcow2_image *img, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
extern int claim_metadata_space (struct qcow2_image *img, uint64_t offset,
                                 uint64_t bytes);
extern int header_write_u64 (struct qcow2_image *img, unsigned field,
                             uint64_t value);
extern void write_state_free (struct qcow2_image *img);
/* qcow2_prepare_write for a repair by the check (check-repair.c): the
 * image may be marked corrupt, and a dirty one is not rebuilt.
 */
extern int write_prepare_for_repair (struct qcow2_image *img);
/* Clean close: write everything, clear the dirty bit we set. */
extern int write_finish (struct qcow2_image *img);

#endif /* QCOW2_WRITE_STATE_H */
