/* Making metadata durable in crash-safe order, and the per-image write
 * set-up and tear-down.
 *
 * The ordering rules (QEMU's; the spec, docs/interop/qcow2.txt, leaves
 * them to the implementation): refcount increments reach the disk
 * before the L2/L1 entries that use them; data before the L2 entry that
 * points at it; pointers are removed before refcounts drop.  A crash
 * can then leak clusters, never leave a pointer to a free or foreign
 * cluster.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>

#include "byte-order.h"
#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "refcount-format.h"
#include "minmax.h"
#include "rounding.h"
#include "write-state.h"

/* Deferred refcount drops are applied at least this often. */
#define MAX_PENDING_RELEASES 65536

int
header_write_u64 (struct qcow2_image *img, unsigned field, uint64_t value)
{
  unsigned char b[8];

  store_be64 (b, value);
  if (io_pwrite (img->file, b, sizeof b, field) == -1 ||
      io_flush (img->file) == -1)
    return -1;
  return 0;
}

/* Claim the file space of a new metadata cluster now, while it is
 * allocated: written back only at the next checkpoint, it could
 * otherwise meet a file system that data writes have filled since, and
 * then no flush would ever succeed again.  An ENOSPC here fails just the
 * request that needed the table.  io_zero allocates the space without
 * writing it where the file system can.
 */
int
claim_metadata_space (struct qcow2_image *img, uint64_t offset, uint64_t bytes)
{
  return io_zero (img->file, offset, bytes);
}

static bool
l1_dirty (const struct qcow2_image *img)
{
  return img->w->l1_dirty_first < img->w->l1_dirty_end;
}

/* Write the changed entries of the L1 table, in whole 512-byte sectors
 * as QEMU does (a sector is written atomically); not the whole table,
 * which for a large image is megabytes at every checkpoint.
 */
static int
write_l1 (struct qcow2_image *img)
{
  const uint64_t per_sector = 512 / 8;
  struct write_state *w = img->w;
  uint64_t first, end;
  uint64_t *be;
  int r;

  if (!l1_dirty (img))
    return 0;
  first = ROUND_DOWN (w->l1_dirty_first, per_sector);
  end = MIN (ROUND_UP (w->l1_dirty_end, per_sector), (uint64_t) img->l1_size);
  be = malloc ((end - first) * 8);
  if (be == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  table_store ((unsigned char *) be, img->l1 + first, end - first, 0);
  r = io_pwrite (img->file, be, (end - first) * 8,
                 img->hdr.l1_table_offset + first * 8);
  free (be);
  if (r == 0)
    w->l1_dirty_first = w->l1_dirty_end = 0;
  return r;
}

static int
checkpoint_steps (struct qcow2_image *img)
{
  /* Guest data in an external file must be durable before the L2
   * entries pointing at it.
   */
  if (img->data != img->file && io_flush (img->data) == -1)
    return -1;
  /* A new L2 table is on disk before the L1 entry that points at it:
   * else a cut between the two leaves the entry pointing at a table of
   * zeroes (a copy-on-write of a table shared with a snapshot then
   * loses the whole range), or at a reused cluster's old bytes.
   */
  if (refcount_writeback (img) == -1 ||
      io_flush (img->file) == -1 ||
      meta_cache_writeback (img->l2_cache, img->file) == -1 ||
      (l1_dirty (img) && io_flush (img->file) == -1) ||
      write_l1 (img) == -1 ||
      io_flush (img->file) == -1)
    return -1;
  /* The old pointers are gone on disk: now refcounts may drop (they are
   * written at the next checkpoint; a crash before that only leaks).
   */
  return refcount_apply_releases (img);
}

/* A failed checkpoint is sticky whatever failed: a failed fdatasync may
 * have dropped pages, and the steps after the failed one never ran.
 */
int
checkpoint (struct qcow2_image *img)
{
  if (write_error_check (img) == -1)
    return -1;
  if (checkpoint_steps (img) == -1)
    return write_failed (img);
  return 0;
}

int
checkpoint_if_needed (struct qcow2_image *img)
{
  if (meta_cache_over_budget (img->l2_cache) ||
      meta_cache_over_budget (img->w->refblock_cache) ||
      img->w->nr_pending > MAX_PENDING_RELEASES)
    return checkpoint (img);
  return 0;
}

int
write_corrupt (struct qcow2_image *img, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  image_report_corrupt (img, "; further writes are refused", fs, args);
  va_end (args);
  img->w->corrupt = true;
  img->w->error = EIO;
  /* Version 2 has no feature bits to record it in. */
  if (img->hdr.version >= 3) {
    img->hdr.incompatible |= INCOMPAT_CORRUPT;
    header_write_u64 (img, HDR_INCOMPATIBLE, img->hdr.incompatible);
  }
  errno = EIO;
  return -1;
}

/* The header changes a writer must make before its first write. */
static int
header_prepare (struct qcow2_image *img)
{
  struct qcow2_header *h = &img->hdr;

  if (h->version < 3)
    return 0;
  /* We maintain no persistent bitmaps: clearing the autoclear bit tells
   * QEMU they are stale.  Unknown autoclear bits are cleared too.
   */
  if (h->autoclear & ~AUTOCLEAR_DATA_FILE_RAW) {
    h->autoclear &= AUTOCLEAR_DATA_FILE_RAW;
    if (header_write_u64 (img, HDR_AUTOCLEAR, h->autoclear) == -1)
      return -1;
  }
  /* Lazy refcounts: the dirty bit is on disk before any write. */
  if ((h->compatible & COMPAT_LAZY_REFCOUNTS) && !(h->incompatible & INCOMPAT_DIRTY)) {
    h->incompatible |= INCOMPAT_DIRTY;
    if (header_write_u64 (img, HDR_INCOMPATIBLE, h->incompatible) == -1)
      return -1;
    img->w->set_dirty_bit = true;
  }
  return 0;
}

/* for_repair: a check is about to repair the image (check-repair.c):
 * neither its corrupt bit nor its dirty bit stops it or is acted on.
 */
static int
prepare_locked (struct qcow2_image *img, bool for_repair)
{
  if (img->w)
    return 0;
  if (img->readonly) {
    diag_error ("%s: the image is open read-only", img->filename);
    errno = EROFS;
    return -1;
  }
  if (!for_repair && img->hdr.crypt_method != CRYPT_NONE && img->crypt == NULL) {
    diag_error ("%s: the image is encrypted and was opened without its "
                "passphrase: it cannot be written", img->filename);
    errno = EPERM;
    return -1;
  }
  if (!for_repair && (img->hdr.incompatible & INCOMPAT_CORRUPT)) {
    diag_error ("%s: the image is marked corrupt; repair it with "
                "'qemu-img check -r all' before writing", img->filename);
    errno = EIO;
    return -1;
  }
  if (image_open_for_writing (img) == -1)
    return -1;
  img->w = calloc (1, sizeof *img->w);
  if (img->w == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  pthread_mutex_init (&img->w->inflight_lock, NULL);
  pthread_cond_init (&img->w->inflight_done, NULL);
  if (refcount_init (img) == -1)
    goto fail;
  if (!for_repair && (img->hdr.incompatible & INCOMPAT_DIRTY) &&
      refcount_rebuild (img) == -1)
    goto fail;
  if (header_prepare (img) == -1)
    goto fail;
  return 0;

 fail:
  write_state_free (img);
  return -1;
}

int
qcow2_prepare_write (struct qcow2_image *img)
{
  SCOPED_WRLOCK (&img->meta_lock);
  return prepare_locked (img, false);
}

int
write_prepare_for_repair (struct qcow2_image *img)
{
  SCOPED_WRLOCK (&img->meta_lock);
  return prepare_locked (img, true);
}

void
write_state_free (struct qcow2_image *img)
{
  if (img->w == NULL)
    return;
  refcount_fini (img);
  pthread_cond_destroy (&img->w->inflight_done);
  pthread_mutex_destroy (&img->w->inflight_lock);
  free (img->w);
  img->w = NULL;
}

/* On a clean close everything is written, the released clusters too,
 * and the dirty bit we set is cleared.
 */
int
write_finish (struct qcow2_image *img)
{
  int r = 0;

  if (img->w == NULL)
    return 0;
  /* After a sticky error nothing more is written: what was not flushed
   * before it is lost, and the close says so.
   */
  if (checkpoint (img) == -1 || checkpoint (img) == -1)
    r = -1;
  else if (img->w->set_dirty_bit) {
    img->hdr.incompatible &= ~INCOMPAT_DIRTY;
    r = header_write_u64 (img, HDR_INCOMPATIBLE, img->hdr.incompatible);
  }
  if (r == -1) {
    int e = errno;
    diag_error ("%s: closed with changes that may not have reached the "
                "disk", img->filename);
    errno = e;
  }
  write_state_free (img);
  return r;
}
