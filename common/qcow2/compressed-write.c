/* Compressed cluster writes (the QCOW2_COMPRESSED request flag).
 *
 * What is stored, cluster by cluster (docs/interop/qcow2.txt, "Cluster
 * mapping": the Compressed Clusters Descriptor, and codec.h for the
 * payload; QEMU's rules where the format leaves a choice):
 *   - only whole clusters are compressed; a write that covers part of a
 *     cluster is merged with what the guest saw there before, and the
 *     image's last, partial cluster is padded with zeroes;
 *   - an all-zero cluster becomes a zero cluster (the ZERO flag in v3,
 *     the subcluster zero bits with extended L2, unallocated in v2 when
 *     nothing shows through from below), never compressed zeroes;
 *   - data that does not compress to at most cluster_size - 1 bytes is
 *     stored as a normal cluster (QEMU's rule);
 *   - compressed clusters are packed byte by byte one after another, so
 *     that a host cluster may hold parts of several; every host cluster
 *     a compressed cluster touches gets one reference for it.  When that
 *     would overflow the refcount (1-bit refcounts always), the next one
 *     starts in a fresh host cluster.
 * Unlike QEMU, a cluster that is already allocated may be rewritten:
 * its old space is released as with any other write.
 *
 * A request is handled in batches of clusters.  Each batch is marked in
 * flight under the metadata lock (write.c), so no other request touches
 * its clusters until it is done; the merging reads and the compression
 * run outside the lock, in parallel across threads; then space is
 * allocated (lock), the data written (no lock) and the L2 entries
 * committed (lock).  Data reaches the file before the entries that
 * point at it; the checkpoint order in writeback.c does the rest.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cluster-cache.h"
#include "codec.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "is-zero.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

/* Guest bytes handled per batch (at least one cluster). */
#define BATCH_BYTES (4 * 1024 * 1024)

enum cw_kind {
  CW_COMPRESSED,                /* out[0 .. len) at host */
  CW_NORMAL,                    /* a whole cluster of data at host */
  CW_ZERO,                      /* no data: a zero (or unallocated) entry */
};

/* One guest cluster of a batch. */
struct cw_cluster {
  enum cw_kind kind;
  const unsigned char *data;    /* the full cluster of new guest data */
  unsigned char *out;           /* compressed bytes */
  size_t len;                   /* their length */
  uint64_t host;                /* where they go */
  bool in_place;                /* CW_NORMAL over its own COPIED cluster */
};

struct batch {
  uint64_t first, nr;           /* guest clusters [first, first + nr) */
  struct cw_cluster *c;
  unsigned char *merged;        /* head and tail clusters, merged */
  unsigned char *out;           /* nr clusters of compressed output */
  struct inflight inflight;
};

/* Why an image cannot take compressed writes, or NULL. */
static const char *
compressed_refusal (const struct qcow2_image *img)
{
  if (img->qcow1)
    return "qcow version 1 images are never written";
  if (img->data != img->file)
    return "it has an external data file (as QEMU, compressed clusters "
      "cannot live there)";
  if (img->hdr.crypt_method != CRYPT_NONE)
    return "it is encrypted (as QEMU, compression and encryption cannot "
      "be combined)";
  return NULL;
}

int
qcow2_enable_compressed_writes (struct qcow2_image *img, int level)
{
  const char *why = compressed_refusal (img);
  unsigned char probe[512] = { 0 }, out[512];

  if (why) {
    diag_error ("%s: cannot store compressed clusters: %s",
                img->filename, why);
    errno = ENOTSUP;
    return -1;
  }
  /* The codec knows its levels: one tiny compression checks the level. */
  if (level > 0 &&
      codec_compress (img->hdr.compression_type, level, probe, sizeof probe,
                      out, sizeof out) == -1)
    return -1;
  img->compression_level = level > 0 ? level : 0;
  return 0;
}

static void
batch_free (struct batch *b)
{
  free (b->c);
  free (b->merged);
  free (b->out);
}

static int
batch_alloc (struct qcow2_image *img, struct batch *b, bool merge)
{
  const uint64_t cs = img->cluster_size;

  b->c = calloc (b->nr, sizeof *b->c);
  b->out = malloc (b->nr * cs);
  b->merged = merge ? malloc (2 * cs) : NULL;
  if (b->c == NULL || b->out == NULL || (merge && b->merged == NULL)) {
    diag_error ("malloc: %m");
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

/* Mark the batch's clusters in flight, waiting for anyone else's on
 * them first.
 */
static int
batch_begin (struct qcow2_image *img, struct batch *b)
{
  SCOPED_WRLOCK (&img->meta_lock);
  for (;;) {
    if (write_check_locked (img) == -1)
      return -1;
    if (!inflight_overlaps (img->w, b->first, b->first + b->nr))
      break;
    inflight_wait (img);
  }
  inflight_add (img->w, &b->inflight, b->first, b->first + b->nr);
  return 0;
}

static void
batch_end (struct qcow2_image *img, struct batch *b)
{
  SCOPED_WRLOCK (&img->meta_lock);
  inflight_remove (img->w, &b->inflight);
}

/* The new guest data of the batch's cluster i, as a whole cluster:
 * straight from the caller's buffer when the request covers it, else
 * the old guest view with the request's part laid over it (zeroes past
 * the end of the image).  `slot` picks one of the two merge buffers.
 */
static int
cluster_data (struct qcow2_image *img, struct batch *b, uint64_t i,
              const unsigned char *buf, uint64_t count, uint64_t offset,
              unsigned slot)
{
  const uint64_t cs = img->cluster_size;
  uint64_t start = (b->first + i) << img->cluster_bits;
  uint64_t avail = MIN (cs, img->size - start);
  uint64_t a = MAX (offset, start), e = MIN (offset + count, start + cs);
  unsigned char *m;

  if (a == start && e == start + cs) {
    b->c[i].data = buf + (start - offset);
    return 0;
  }
  m = b->merged + slot * cs;
  if (a > start || e < start + avail) {
    if (qcow2_pread (img, m, avail, start) == -1)
      return -1;
  }
  memset (m + avail, 0, cs - avail);
  memcpy (m + (a - start), buf + (a - offset), e - a);
  b->c[i].data = m;
  return 0;
}

/* How an all-zero cluster is stored: as an entry, or (version 2 with
 * something below showing through) as data.
 */
static bool
zero_as_entry (const struct qcow2_image *img, uint64_t cluster)
{
  if (img->hdr.version >= 3)
    return true;
  return img->backing == NULL ||
    (cluster << img->cluster_bits) >= img->backing->size;
}

/* Outside the lock: decide each cluster's kind and compress. */
static int
batch_compress (struct qcow2_image *img, struct batch *b)
{
  const uint64_t cs = img->cluster_size;
  int level = img->compression_level > 0 ? img->compression_level : -1;

  for (uint64_t i = 0; i < b->nr; i++) {
    struct cw_cluster *c = &b->c[i];
    ssize_t n;

    if (is_zero (c->data, cs) && zero_as_entry (img, b->first + i)) {
      c->kind = CW_ZERO;
      continue;
    }
    c->out = b->out + i * cs;
    /* QEMU's rule: compressed only if it fits in cluster_size - 1. */
    n = codec_compress (img->hdr.compression_type, level, c->data, cs,
                        c->out, cs - 1);
    if (n == -1)
      return -1;
    c->kind = n > 0 ? CW_COMPRESSED : CW_NORMAL;
    c->len = n;
  }
  return 0;
}

/* Reserve `size` bytes for one compressed cluster, packed after the
 * previous one where possible (as QEMU's qcow2_alloc_bytes): every
 * host cluster the bytes touch gets one more reference.  Called with
 * the metadata lock held.
 */
static int64_t
alloc_compressed_bytes (struct qcow2_image *img, uint64_t size)
{
  struct write_state *w = img->w;
  const uint64_t cs = img->cluster_size;
  uint64_t off = w->compressed_next, refs = 0;
  bool shared = false;          /* off is inside a cluster already in use */

  if (off) {
    if (refcount_get (img, off >> img->cluster_bits, &refs) == -1)
      return -1;
    /* A full refcount (always, with 1-bit refcounts) means a fresh
     * cluster.  Zero cannot happen (freeing the cluster resets
     * compressed_next, see refcount.c) but would mean it is not ours.
     */
    shared = refs > 0 && refs < w->refcount_max;
  }
  if (!shared || cs - (off & (cs - 1)) < size) {
    int64_t fresh = refcount_alloc (img, 1);

    if (fresh == -1)
      return -1;
    /* Run on into the new cluster only if it directly follows. */
    if (!shared || (uint64_t) fresh != ROUND_UP (off, cs)) {
      off = fresh;
      shared = false;
    }
  }
  if (off + size > UINT64_C (1) << compressed_offset_bits (img->cluster_bits)) {
    diag_error ("%s: host offset %#" PRIx64 " is too large for a compressed "
                "cluster descriptor", img->filename, off);
    errno = EFBIG;
    return -1;
  }
  if (shared && refcount_set (img, off >> img->cluster_bits, refs + 1) == -1)
    return -1;
  /* Before the bytes change: no cached cluster may outlive them. */
  if (img->cluster_cache)
    cluster_cache_invalidate (img->cluster_cache, off, size);
  w->compressed_next = (off + size) & (cs - 1) ? off + size : 0;
  return off;
}

/* Under the lock: find the host space of every cluster that has data. */
static int
batch_place (struct qcow2_image *img, struct batch *b)
{
  const uint64_t entries = l2_entries_per_table (img);

  for (uint64_t i = 0; i < b->nr; i++) {
    struct cw_cluster *c = &b->c[i];
    uint64_t cluster = b->first + i;
    struct meta_table *t;
    struct l2_entry d;
    int64_t host;
    int r;

    switch (c->kind) {
    case CW_ZERO:
      break;

    case CW_COMPRESSED:
      host = alloc_compressed_bytes (img, c->len);
      if (host == -1)
        return -1;
      c->host = host;
      break;

    case CW_NORMAL:
      /* A cluster of its own (COPIED) is rewritten in place, as any
       * write would, once it is known not to be metadata (a hostile
       * image may point the entry there; the full check costs little
       * next to a compression); anything else gets a new cluster.
       */
      if (l2_for_write (img, cluster >> img->l2_bits, &t) == -1)
        return -1;
      r = l2_decode (img, t, cluster & (entries - 1), &d);
      meta_cache_put (img->l2_cache, t);
      c->in_place = r == 0 && d.kind != MAP_COMPRESSED && d.has_host &&
        (d.raw & ENTRY_COPIED);
      if (c->in_place)
        r = check_no_overlap (img, d.host, img->cluster_size);
      if (r == -1)
        return -1;
      if (c->in_place)
        c->host = d.host;
      else {
        host = refcount_alloc (img, 1);
        if (host == -1)
          return -1;
        c->host = host;
      }
      break;
    }
  }
  return 0;
}

/* Outside the lock: write the data.  The compressed outputs are moved
 * together first, so that clusters packed one after another on disk go
 * out in one call.
 */
static int
batch_write (struct qcow2_image *img, struct batch *b)
{
  unsigned char *pack = b->out;
  uint64_t run_host = 0, run_len = 0;
  unsigned char *run_buf = NULL;

  for (uint64_t i = 0; i < b->nr; i++) {
    struct cw_cluster *c = &b->c[i];

    if (c->kind != CW_COMPRESSED)
      continue;
    memmove (pack, c->out, c->len);
    c->out = pack;
    pack += c->len;
  }

  for (uint64_t i = 0; i < b->nr; i++) {
    struct cw_cluster *c = &b->c[i];
    uint64_t guest = (b->first + i) << img->cluster_bits;

    if (c->kind == CW_NORMAL &&
        data_write (img, c->data, img->cluster_size, c->host, guest) == -1)
      return -1;
    if (c->kind != CW_COMPRESSED)
      continue;
    if (run_len && run_host + run_len == c->host &&
        run_buf + run_len == c->out) {
      run_len += c->len;
      continue;
    }
    if (run_len && io_pwrite (img->file, run_buf, run_len, run_host) == -1)
      return -1;
    run_host = c->host;
    run_buf = c->out;
    run_len = c->len;
  }
  if (run_len && io_pwrite (img->file, run_buf, run_len, run_host) == -1)
    return -1;
  return 0;
}

/* Would the guest see zeroes here with no entry change and no space?
 * (Then an all-zero cluster needs no metadata at all.)
 */
static bool
nothing_below (const struct qcow2_image *img, uint64_t cluster)
{
  return img->backing == NULL ||
    (cluster << img->cluster_bits) >= img->backing->size;
}

static bool
reads_zero_without_space (const struct qcow2_image *img,
                          const struct l2_entry *d, uint64_t cluster)
{
  if (d->has_host || d->kind == MAP_COMPRESSED)
    return false;
  if (d->kind == MAP_ZERO)
    return true;
  if (img->extended_l2 && d->zero_bits == UINT32_MAX)
    return true;
  return nothing_below (img, cluster);
}

/* The new L2 entry (and subcluster bitmap) of a cluster. */
static void
new_entry (const struct qcow2_image *img, const struct cw_cluster *c,
           uint64_t *entry, uint64_t *bitmap)
{
  *entry = 0;
  *bitmap = 0;
  switch (c->kind) {
  case CW_ZERO:
    if (img->extended_l2) {
      *entry = 0;
      *bitmap = (uint64_t) UINT32_MAX << SC_ZERO_SHIFT;
    }
    else
      *entry = img->hdr.version >= 3 ? L2E_ZERO : 0;
    break;
  case CW_COMPRESSED:
    /* Compressed entries never carry COPIED, nor a bitmap. */
    *entry = compressed_descriptor (c->host, c->len, img->cluster_bits);
    break;
  case CW_NORMAL:
    *entry = c->host | ENTRY_COPIED;
    if (img->extended_l2)
      *bitmap = SC_ALLOC_MASK;
    break;
  }
}

/* The clusters an entry about to be replaced points at lose a
 * reference, and are punched when that was the last.  A hostile image
 * can point an entry at its own metadata with a refcount that lies:
 * the clusters are checked against all of it first (the full check
 * that allocations get: a release happens once per rewritten cluster,
 * not per write), and a hit marks the image corrupt.
 */
static int
check_release (struct qcow2_image *img, const struct l2_entry *d)
{
  const uint64_t cs = img->cluster_size;
  uint64_t host, len, first, end;

  if (d->kind == MAP_COMPRESSED) {
    host = compressed_host_offset (d->raw, img->cluster_bits);
    len = compressed_length (d->raw, img->cluster_bits);
  }
  else if (d->has_host) {
    host = d->host;
    len = cs;
  }
  else
    return 0;
  /* Refcounts are per cluster: every cluster touched counts. */
  first = ROUND_DOWN (host, cs);
  end = ROUND_UP (host + len, cs);
  return check_no_overlap (img, first, end - first);
}

/* Under the lock: point the L2 entries at the new data and release
 * what they pointed at before (at the next checkpoint).
 */
static int
batch_commit (struct qcow2_image *img, struct batch *b)
{
  const uint64_t entries = l2_entries_per_table (img);
  struct meta_table *t = NULL;
  uint64_t t_l1 = 0;
  bool dirty = false;
  int r = 0;

  for (uint64_t i = 0; i < b->nr && r == 0; i++) {
    const struct cw_cluster *c = &b->c[i];
    uint64_t cluster = b->first + i, l1 = cluster >> img->l2_bits;
    uint64_t index = cluster & (entries - 1), entry, bitmap;
    struct l2_entry d;

    /* Zeroes over a range without an L2 table and with nothing below:
     * already what the guest sees.
     */
    if (c->kind == CW_ZERO && (img->l1[l1] & L1E_OFFSET_MASK) == 0 &&
        nothing_below (img, cluster))
      continue;
    if (t == NULL || t_l1 != l1) {
      if (t) {
        if (dirty)
          meta_cache_mark_dirty (img->l2_cache, t);
        meta_cache_put (img->l2_cache, t);
        t = NULL;
      }
      dirty = false;
      r = l2_for_write (img, l1, &t);
      if (r == -1)
        break;
      t_l1 = l1;
    }
    r = l2_decode (img, t, index, &d);
    if (r == -1)
      break;
    if (c->kind == CW_ZERO && reads_zero_without_space (img, &d, cluster))
      continue;
    if (!c->in_place) {
      r = check_release (img, &d);
      if (r == 0)
        r = l2_release_entry (img, &d);
      if (r == -1)
        break;                  /* the entry stays as it was */
    }
    new_entry (img, c, &entry, &bitmap);
    l2_store_entry (img, t, index, entry, bitmap);
    dirty = true;
  }
  if (t) {
    if (dirty)
      meta_cache_mark_dirty (img->l2_cache, t);
    meta_cache_put (img->l2_cache, t);
  }
  return r;
}

/* Find host space for the batch. */
static int
batch_find_space (struct qcow2_image *img, struct batch *b)
{
  SCOPED_WRLOCK (&img->meta_lock);
  if (write_check_locked (img) == -1)
    return -1;
  if (batch_place (img, b) == -1)
    return write_failed_no_room (img);
  return 0;
}

/* Once the batch's data is written, point its L2 entries at it; either
 * way the batch is no longer in flight.
 */
static int
batch_finish (struct qcow2_image *img, struct batch *b)
{
  int r;

  SCOPED_WRLOCK (&img->meta_lock);
  r = write_check_locked (img);
  if (r == 0 && (r = batch_commit (img, b)) == 0)
    r = checkpoint_if_needed (img);
  if (r == -1)
    write_failed_no_room (img);
  inflight_remove (img->w, &b->inflight);
  return r;
}

/* One batch: the guest clusters touched by [offset, offset + count). */
static int
write_batch (struct qcow2_image *img, const unsigned char *buf,
             uint64_t count, uint64_t offset)
{
  const uint64_t cs = img->cluster_size;
  uint64_t end = offset + count;
  struct batch b = { .first = offset >> img->cluster_bits };
  int r = -1;

  b.nr = DIV_ROUND_UP (end, cs) - b.first;
  if (batch_alloc (img, &b, !IS_ALIGNED (offset, cs) || !IS_ALIGNED (end, cs))
      == -1 ||
      batch_begin (img, &b) == -1)
    goto out;

  /* Only the first and the last cluster can be partly covered. */
  for (uint64_t i = 0; i < b.nr; i++)
    if (cluster_data (img, &b, i, buf, count, offset, i == 0 ? 0 : 1) == -1)
      goto end;
  if (batch_compress (img, &b) == -1)
    goto end;

  /* On failure the space placed so far stays allocated but unused: a
   * leak, never a pointer to garbage.
   */
  if (batch_find_space (img, &b) == -1)
    goto end;
  if (batch_write (img, &b) == -1) {
    data_write_failed (img);
    goto end;
  }
  r = batch_finish (img, &b);
  goto out;

 end:
  r = -1;
  batch_end (img, &b);
 out:
  batch_free (&b);
  return r;
}

int
compressed_pwrite (struct qcow2_image *img, const void *buf, uint64_t count,
                   uint64_t offset, unsigned flags)
{
  const unsigned char *p = buf;
  const uint64_t batch = MAX (img->cluster_size, (uint64_t) BATCH_BYTES);
  const char *why = compressed_refusal (img);

  if (why) {
    diag_error ("%s: cannot store compressed clusters: %s",
                img->filename, why);
    errno = ENOTSUP;
    return -1;
  }
  if (count > img->size || offset > img->size - count) {
    diag_error ("%s: write of %" PRIu64 " bytes at %" PRIu64 " is beyond "
                "the end of the image", img->filename, count, offset);
    errno = EINVAL;
    return -1;
  }
  while (count > 0) {
    uint64_t n = MIN (count, ROUND_DOWN (offset, batch) + batch - offset);

    if (write_batch (img, p, n, offset) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }
  return flags & QCOW2_FUA ? qcow2_flush (img) : 0;
}
