/* Guest writes: in-place rewrites, allocation and copy-on-write.
 *
 * A write is cut into runs.  Each run is planned with the metadata lock
 * held exclusively, then its data is written with the lock dropped, and
 * if it needed new clusters or bitmap changes its L2 entries are
 * committed under the lock again.  While a run's guest clusters are
 * "in flight" other requests touching them wait, so two requests never
 * allocate the same cluster, yet writes to different clusters overlap.
 *
 * The classes of cluster (QEMU's rules for the COPIED bit of L1 and L2
 * entries, docs/interop/qcow2.txt "Cluster mapping", and for refcounts
 * above 1, "Host cluster management"):
 *   DIRECT  a COPIED cluster whose touched (sub)clusters already hold
 *           data: written in place, no metadata change.
 *   REUSE   a COPIED cluster that needs its entry changed (a zero
 *           cluster keeping its space, unallocated or zero subclusters).
 *   FRESH   everything else: unallocated, zero, compressed, shared
 *           (refcount > 1): new clusters, head and tail copied from what
 *           the guest saw before.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "is-zero.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

enum write_class { DIRECT, REUSE, FRESH };

/* One run of a write. */
struct run {
  enum write_class class;
  uint64_t offset, length;      /* the guest bytes of the request it covers */
  uint64_t host;                /* DIRECT: where offset goes; else host of first cluster */
  uint64_t first_cluster, nr_clusters;
  uint32_t fill_first;          /* within the first cluster: start of what is written */
  uint32_t fill_end;            /* within the last cluster: end of it */
  bool head_zero, tail_zero;    /* the first / last cluster read as zeroes */
  struct meta_table *l2;        /* pinned until commit */
  struct inflight inflight;
};

/* In-flight ranges. */

bool
inflight_overlaps (const struct write_state *w, uint64_t first, uint64_t end)
{
  for (const struct inflight *i = w->inflight; i; i = i->next)
    if (first < i->end && i->first < end)
      return true;
  return false;
}

void
inflight_add (struct write_state *w, struct inflight *i, uint64_t first,
              uint64_t end)
{
  i->first = first;
  i->end = end;
  i->next = w->inflight;
  w->inflight = i;
}

void
inflight_remove (struct write_state *w, struct inflight *done)
{
  struct inflight **pp = &w->inflight;

  while (*pp != done)
    pp = &(*pp)->next;
  *pp = done->next;
  pthread_mutex_lock (&w->inflight_lock);
  w->inflight_gen++;
  pthread_cond_broadcast (&w->inflight_done);
  pthread_mutex_unlock (&w->inflight_lock);
}

/* Wait until some in-flight run finishes.  Called and returns with the
 * metadata lock held exclusively (so a caller may hold it with
 * SCOPED_WRLOCK), but drops it while waiting: anything may have changed
 * meanwhile.
 */
void
inflight_wait (struct qcow2_image *img)
{
  struct write_state *w = img->w;
  uint64_t gen;

  pthread_mutex_lock (&w->inflight_lock);
  gen = w->inflight_gen;
  pthread_mutex_unlock (&w->inflight_lock);

  pthread_rwlock_unlock (&img->meta_lock);
  pthread_mutex_lock (&w->inflight_lock);
  while (w->inflight_gen == gen)
    pthread_cond_wait (&w->inflight_done, &w->inflight_lock);
  pthread_mutex_unlock (&w->inflight_lock);
  pthread_rwlock_wrlock (&img->meta_lock);
}

/* L2 tables.  A write needs the table private to the active L1 (COPIED):
 * a missing one is allocated, a shared one copied ("Copy-on-write").
 */
int
l2_for_write (struct qcow2_image *img, uint64_t l1_index,
              struct meta_table **t)
{
  struct write_state *w = img->w;
  int64_t old = l1_entry_l2_offset (img, l1_index);
  struct meta_table *src = NULL;
  int64_t new;

  if (old == -1)
    return -1;
  if (old && (img->l1[l1_index] & ENTRY_COPIED))
    return meta_cache_get (img->l2_cache, img->file, old, t);

  if (old && meta_cache_get (img->l2_cache, img->file, old, &src) == -1)
    return -1;
  new = refcount_alloc (img, 1);
  if (new == -1 ||
      claim_metadata_space (img, new, img->cluster_size) == -1 ||
      overlap_add (img, new, img->cluster_size) == -1 ||
      meta_cache_get_new (img->l2_cache, new, t) == -1) {
    if (src)
      meta_cache_put (img->l2_cache, src);
    return -1;
  }
  if (src) {
    memcpy ((*t)->data, src->data, img->cluster_size);
    meta_cache_put (img->l2_cache, src);
    if (refcount_release (img, old, img->cluster_size) == -1)
      return -1;
  }
  if (old)
    overlap_remove (img, old, img->cluster_size);
  image_debug (img, QCOW2_DEBUG_ALLOC,
               "%s: alloc: L2 table %" PRIu64 " at host offset %#" PRIx64
               "%s", img->filename, l1_index, (uint64_t) new,
               old ? " (copy-on-write of a shared table)" : "");
  img->l1[l1_index] = (uint64_t) new | ENTRY_COPIED;
  l1_mark_dirty (w, l1_index);
  return 0;
}

/* Subclusters touched by the byte range [first, end) of a cluster. */
static uint32_t
subcluster_mask (const struct qcow2_image *img, uint64_t first, uint64_t end)
{
  unsigned a = first >> img->subcluster_bits;
  unsigned b = DIV_ROUND_UP (end, UINT64_C (1) << img->subcluster_bits);
  uint64_t m = ((UINT64_C (1) << b) - 1) & ~((UINT64_C (1) << a) - 1);

  return m;
}

/* Classify one cluster for a write of [ws, we) within it; sets the
 * range of the cluster that must be written (data plus copied parts).
 */
static enum write_class
classify (const struct qcow2_image *img, const struct l2_entry *d,
          uint32_t ws, uint32_t we, uint32_t *fill_first, uint32_t *fill_end)
{
  const uint32_t cs = img->cluster_size;
  const uint32_t sc = UINT32_C (1) << img->subcluster_bits;
  bool copied = d->has_host && (d->raw & ENTRY_COPIED);

  if (!img->extended_l2) {
    if (copied && d->kind == MAP_DATA) {
      *fill_first = ws;
      *fill_end = we;
      return DIRECT;
    }
    *fill_first = 0;
    *fill_end = cs;
    return copied ? REUSE : FRESH;
  }

  *fill_first = ROUND_DOWN (ws, sc);
  *fill_end = ROUND_UP (we, sc);
  if (copied) {
    uint32_t touched = subcluster_mask (img, ws, we);
    if ((d->alloc_bits & touched) == touched) {
      *fill_first = ws;
      *fill_end = we;
      return DIRECT;
    }
    return REUSE;
  }
  if (d->kind == MAP_COMPRESSED || d->has_host) {
    /* Shared or compressed: the new cluster takes all of it. */
    *fill_first = 0;
    *fill_end = cs;
  }
  return FRESH;
}

/* Does the guest see zeroes in the whole cluster an entry maps?  Then
 * a copy-on-write of it copies nothing.  With subclusters each has its
 * own state: write_run_data looks at what it copies instead.
 */
static bool
entry_reads_zero (const struct qcow2_image *img, const struct l2_entry *d)
{
  if (img->extended_l2)
    return false;
  return d->kind == MAP_ZERO ||
    (d->kind == MAP_UNALLOCATED && img->backing == NULL);
}

/* QCOW2_DEBUG_ALLOC (the caller tests it): a fresh run whose new
 * clusters take more than the write covers gets the rest copied from
 * what the guest saw there (unless that reads as zeroes).
 */
static void
debug_copy_on_write (struct qcow2_image *img, const struct run *r)
{
  const uint64_t cs = img->cluster_size;
  uint64_t last_end = ((r->offset + r->length - 1) & (cs - 1)) + 1;
  bool head = r->fill_first < (r->offset & (cs - 1)) && !r->head_zero;
  bool tail = r->fill_end > last_end && !r->tail_zero;

  if (head || tail)
    debug_print (&img->debug, "%s: alloc: copy-on-write of guest %#"
                 PRIx64 "+%" PRIu64 " into host %#" PRIx64 " (%s%s%s)",
                 img->filename,
                 r->first_cluster * cs, r->nr_clusters * cs, r->host,
                 head ? "head" : "", head && tail ? " and " : "",
                 tail ? "tail" : "");
}

/* Plan the run starting at offset.  Returns 0, 1 if it must wait for an
 * in-flight run, or -1.
 */
static int
plan_run (struct qcow2_image *img, uint64_t offset, uint64_t count,
          struct run *r)
{
  const uint64_t cs = img->cluster_size;
  const uint64_t entries = l2_entries_per_table (img);
  uint64_t cluster = offset >> img->cluster_bits;
  uint64_t index = cluster & (entries - 1);
  uint64_t end = offset + count, max_clusters;
  struct l2_entry d;
  uint32_t ff, fe;

  if (inflight_overlaps (img->w, cluster, cluster + 1))
    return 1;
  if (l2_for_write (img, cluster >> img->l2_bits, &r->l2) == -1)
    return -1;
  if (l2_decode (img, r->l2, index, &d) == -1)
    goto err;

  r->offset = offset;
  r->first_cluster = cluster;
  r->nr_clusters = 1;
  r->class = classify (img, &d, offset & (cs - 1),
                       MIN (end - (cluster << img->cluster_bits), cs),
                       &r->fill_first, &r->fill_end);
  r->head_zero = r->tail_zero = entry_reads_zero (img, &d);
  max_clusters = MIN (entries - index, refcount_max_run (img));

  /* Extend DIRECT runs over contiguous host clusters, FRESH runs over
   * clusters that also need new space; a REUSE run is one cluster.
   */
  if (r->class == DIRECT)
    r->host = d.host + (offset & (cs - 1));
  while (r->class != REUSE && r->nr_clusters < max_clusters &&
         ((cluster + r->nr_clusters) << img->cluster_bits) < end) {
    uint64_t next = cluster + r->nr_clusters;
    uint64_t next_end = MIN (end - (next << img->cluster_bits), cs);

    if (inflight_overlaps (img->w, next, next + 1) ||
        l2_decode (img, r->l2, index + r->nr_clusters, &d) == -1 ||
        classify (img, &d, 0, next_end, &ff, &fe) != r->class ||
        (r->class == DIRECT && d.host != ROUND_DOWN (r->host, cs) + r->nr_clusters * cs))
      break;
    r->nr_clusters++;
    r->fill_end = fe;
    r->tail_zero = entry_reads_zero (img, &d);
  }
  r->length = MIN (end, (cluster + r->nr_clusters) << img->cluster_bits) - offset;

  /* In-place writes go wherever the L2 entries say, and a hostile image
   * can point them (COPIED, refcount 1) at its own metadata, which the
   * next write-back of a cached table would then overwrite: checked
   * against all of it, as QEMU checks every write (overlap.c).
   */
  if (r->class != FRESH && img->data == img->file &&
      check_no_overlap (img, r->class == DIRECT ? ROUND_DOWN (r->host, cs)
                        : d.host, r->nr_clusters * cs) == -1)
    goto err;

  if (r->class == DIRECT) {
    meta_cache_put (img->l2_cache, r->l2);
    return 0;
  }
  if (r->class == FRESH && img->data != img->file)
    /* QEMU keeps every cluster of an external data file at its guest
     * offset, outside the image's refcounts (so a raw data file stays a
     * valid raw image).
     */
    r->host = cluster << img->cluster_bits;
  else if (r->class == FRESH) {
    int64_t host = refcount_alloc (img, r->nr_clusters);
    if (host == -1)
      goto err;
    r->host = host;
    if (img->debug.flags & QCOW2_DEBUG_ALLOC)
      debug_copy_on_write (img, r);
  }
  else
    r->host = d.host;
  inflight_add (img->w, &r->inflight, cluster, cluster + r->nr_clusters);
  return 0;

 err:
  meta_cache_put (img->l2_cache, r->l2);
  return -1;
}

/* A part of new space the request does not cover: zeroed, or written
 * from the copy of what the guest saw there.
 */
static int
fill_part (struct qcow2_image *img, bool zero, const unsigned char *copy,
           uint64_t len, uint64_t host, uint64_t guest)
{
  if (len == 0)
    return 0;
  return zero ? io_zero (img->data, host, len)
    : data_write (img, copy, len, host, guest);
}

/* Where a run's new space begins and ends, and the parts of it the
 * request does not cover (head and tail).
 */
struct span {
  uint64_t first, end;          /* guest offsets */
  uint64_t head, tail;          /* bytes */
  uint64_t host;                /* where first goes */
};

static void
run_span (const struct qcow2_image *img, const struct run *r, struct span *s)
{
  uint64_t cluster0 = r->first_cluster << img->cluster_bits;

  s->first = cluster0 + r->fill_first;
  s->end = cluster0 + ((r->nr_clusters - 1) << img->cluster_bits) + r->fill_end;
  s->head = r->offset - s->first;
  s->tail = s->end - (r->offset + r->length);
  s->host = r->host + r->fill_first;
}

/* Copy-on-write of a small request: what the guest saw around it and
 * the request's own bytes go down in one write, as QEMU merges the two.
 * What is read around it comes in one read when it has two ends and
 * the request is not larger than they are (the bytes in between are
 * read too, then replaced): a request of a few KiB into a cluster of a
 * backing file costs one read and one write.
 * Returns 1 if both ends read as zeroes (nothing was written: the
 * caller zeroes the space instead), 0 once written, -1 on error.
 */
#define MERGED_WRITE_MAX (1024 * 1024)

static int
write_merged (struct qcow2_image *img, const struct run *r,
              const struct span *s, const unsigned char *buf)
{
  const uint64_t len = s->end - s->first;
  unsigned char *b = malloc (len);
  int ret = -1;

  if (b == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  if (s->head && s->tail && r->length <= s->head + s->tail
      ? qcow2_pread (img, b, len, s->first) == -1
      : ((s->head && qcow2_pread (img, b, s->head, s->first) == -1) ||
         (s->tail && qcow2_pread (img, b + len - s->tail, s->tail,
                                  r->offset + r->length) == -1)))
    goto out;
  if (img->crypt == NULL && is_zero (b, s->head) &&
      is_zero (b + len - s->tail, s->tail)) {
    ret = 1;
    goto out;
  }
  memcpy (b + s->head, buf, r->length);
  ret = data_write (img, b, len, s->host, s->first);
  if (ret == -1)
    data_write_failed (img);
 out:
  free (b);
  return ret;
}

/* Write the run's data, with the parts of its clusters the request
 * does not cover copied from what the guest saw before.  Where that is
 * zeroes, the new space is made to read as zeroes instead (io_zero: a
 * fallocate, never the bytes, as QEMU does), unless it is encrypted:
 * zeroes on disk would decrypt to noise.
 */
static int
write_run_data (struct qcow2_image *img, const struct run *r,
                const unsigned char *buf)
{
  bool plain = img->crypt == NULL;
  bool head_zero = plain && r->head_zero, tail_zero = plain && r->tail_zero;
  unsigned char *copy = NULL, *tail_copy = NULL;
  struct span s;
  int ret = -1;

  run_span (img, r, &s);
  if ((!s.head || !head_zero) && (!s.tail || !tail_zero) &&
      (s.head || s.tail) && r->length <= MERGED_WRITE_MAX) {
    int m = write_merged (img, r, &s, buf);

    if (m <= 0)
      return m;
    head_zero = tail_zero = true;
  }
  else if ((s.head && !head_zero) || (s.tail && !tail_zero)) {
    copy = malloc (s.head + s.tail);
    if (copy == NULL) {
      diag_error ("malloc: %m");
      return -1;
    }
    tail_copy = copy + s.head;
    if ((s.head && !head_zero &&
         qcow2_pread (img, copy, s.head, s.first) == -1) ||
        (s.tail && !tail_zero &&
         qcow2_pread (img, tail_copy, s.tail, r->offset + r->length) == -1))
      goto out;
    head_zero = head_zero || (plain && is_zero (copy, s.head));
    tail_zero = tail_zero || (plain && is_zero (tail_copy, s.tail));
  }
  /* One call zeroes both ends when both need it. */
  if (s.head && head_zero && s.tail && tail_zero
      ? io_zero (img->data, s.host, s.end - s.first) == -1
      : (fill_part (img, head_zero, copy, s.head, s.host, s.first) == -1 ||
         fill_part (img, tail_zero, tail_copy, s.tail,
                    s.host + s.head + r->length, r->offset + r->length) == -1))
    goto failed;
  if (data_write (img, buf, r->length, s.host + s.head, r->offset) == -1)
    goto failed;
  ret = 0;
  goto out;
 failed:
  data_write_failed (img);
 out:
  free (copy);
  return ret;
}

/* Release what an entry pointed at (at the next checkpoint). */
bool
l2_entry_host_range (const struct qcow2_image *img, const struct l2_entry *d,
                     uint64_t *host, uint64_t *len)
{
  if (d->kind == MAP_COMPRESSED) {
    *host = compressed_host_offset (d->raw, img->cluster_bits);
    *len = compressed_length (d->raw, img->cluster_bits);
    return true;
  }
  if (d->has_host && img->data == img->file) {
    *host = d->host;
    *len = img->cluster_size;
    return true;
  }
  return false;
}

int
l2_release_entry (struct qcow2_image *img, const struct l2_entry *d)
{
  uint64_t host, len;

  if (!l2_entry_host_range (img, d, &host, &len))
    return 0;
  /* A hostile image can point a data entry at its own metadata: freeing
   * (and punching) that would destroy it.
   */
  if (check_no_overlap (img, host, len) == -1)
    return -1;
  return refcount_release (img, host, len);
}

void
l2_store_entry (struct qcow2_image *img, struct meta_table *t, uint64_t index,
             uint64_t entry, uint64_t bitmap)
{
  unsigned char *p = t->data + index * img->l2_entry_size;

  store_be64 (p, entry);
  if (img->extended_l2)
    store_be64 (p + 8, bitmap);
}

/* Point the run's L2 entries at the new data. */
static int
commit_run (struct qcow2_image *img, struct run *r)
{
  const uint64_t index0 = r->first_cluster & (l2_entries_per_table (img) - 1);
  int ret = 0;

  for (uint64_t i = 0; i < r->nr_clusters && ret == 0; i++) {
    uint32_t ff = i == 0 ? r->fill_first : 0;
    uint32_t fe = i == r->nr_clusters - 1 ? r->fill_end : img->cluster_size;
    uint64_t host = r->class == FRESH ? r->host + (i << img->cluster_bits) : r->host;
    uint64_t bitmap = 0;
    struct l2_entry d;

    if (l2_decode (img, r->l2, index0 + i, &d) == -1) {
      ret = -1;
      break;
    }
    if (img->extended_l2) {
      uint32_t touched = subcluster_mask (img, ff, fe);
      uint32_t alloc = (d.kind == MAP_DATA ? d.alloc_bits : 0) | touched;
      uint32_t zero = (d.kind == MAP_COMPRESSED ? 0 : d.zero_bits) & ~touched;
      bitmap = ((uint64_t) zero << SC_ZERO_SHIFT) | alloc;
    }
    if (r->class == FRESH)
      ret = l2_release_entry (img, &d);
    l2_store_entry (img, r->l2, index0 + i, host | ENTRY_COPIED, bitmap);
  }
  meta_cache_mark_dirty (img->l2_cache, r->l2);
  meta_cache_put (img->l2_cache, r->l2);
  inflight_remove (img->w, &r->inflight);
  if (ret == 0)
    ret = checkpoint_if_needed (img);
  return ret;
}

int
write_check_locked (struct qcow2_image *img)
{
  if (img->w == NULL) {
    diag_error ("%s: the image is not open for writing", img->filename);
    errno = EROFS;
    return -1;
  }
  return write_error_check (img);
}

/* Plan the next run of a write, waiting while it overlaps a run in
 * flight.
 */
static int
plan_step (struct qcow2_image *img, uint64_t offset, uint64_t count,
           struct run *r)
{
  SCOPED_WRLOCK (&img->meta_lock);
  for (;;) {
    int p;

    if (write_check_locked (img) == -1)
      return -1;
    p = plan_run (img, offset, count, r);
    if (p == -1)
      return write_failed_no_room (img);
    if (p == 0)
      return 0;
    inflight_wait (img);
  }
}

/* Once the run's data is written (p: 0, or -1 if that failed), commit
 * its L2 entries, or give up on them.
 */
static int
finish_step (struct qcow2_image *img, struct run *r, int p)
{
  SCOPED_WRLOCK (&img->meta_lock);
  /* An error latched meanwhile: nothing more is committed. */
  if (p == 0)
    p = write_check_locked (img);
  if (p == 0) {
    p = commit_run (img, r);
    if (p == -1)
      write_failed_no_room (img);
  }
  else {
    /* The new clusters stay allocated but unused: a leak, never a
     * pointer to garbage.
     */
    meta_cache_put (img->l2_cache, r->l2);
    inflight_remove (img->w, &r->inflight);
  }
  return p;
}

/* Write one run; returns the bytes written or -1.  The data is written
 * without the metadata lock.
 */
static int64_t
write_step (struct qcow2_image *img, const unsigned char *buf, uint64_t count,
            uint64_t offset)
{
  struct run r;
  int written;

  if (plan_step (img, offset, count, &r) == -1)
    return -1;

  if (r.class == DIRECT)
    return data_write (img, buf, r.length, r.host, offset) == -1
      ? data_write_failed (img) : (int64_t) r.length;

  written = write_run_data (img, &r, buf);
  if (finish_step (img, &r, written) == -1)
    return -1;
  return r.length;
}

int
qcow2_pwrite (struct qcow2_image *img, const void *buf, uint64_t count,
              uint64_t offset, unsigned flags)
{
  const unsigned char *p = buf;

  if (flags & QCOW2_COMPRESSED)
    return compressed_pwrite (img, buf, count, offset, flags);
  while (count > 0) {
    int64_t n = write_step (img, p, count, offset);

    if (n == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }
  return flags & QCOW2_FUA ? qcow2_flush (img) : 0;
}

int
qcow2_flush (struct qcow2_image *img)
{
  SCOPED_WRLOCK (&img->meta_lock);
  if (img->w && img->w->error) {
    /* Keep what already reached the files, yet report the error. */
    if (img->data != img->file)
      io_flush (img->data);
    io_flush (img->file);
    return write_error_check (img);
  }
  if (img->w)
    return checkpoint (img);
  return img->readonly ? 0 : io_flush (img->file);
}
