/* Creating, deleting and applying internal snapshots
 * ("Snapshots" in qcow2.txt).  The VM state of a snapshot is never
 * touched: qemu-img makes disk-only snapshots, and deleting one that
 * has a VM state releases only its L1 tree, as QEMU does (the VM
 * state lives in clusters past the end of the guest's, mapped by the
 * same L1 table).
 *
 * A new snapshot table always goes to new clusters; the header write of
 * nb_snapshots and snapshots_offset (adjacent fields, one sector) is
 * the commit point.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "byte-order.h"
#include "cleanup.h"
#include "diag.h"
#include "edit.h"
#include "internal.h"
#include "io.h"
#include "qcow2-edit.h"
#include "refcount-format.h"
#include "rounding.h"
#include "snapshot-format.h"
#include "write-state.h"

/* The table as stored (validated when the image was opened). */
struct raw_entry {
  const unsigned char *p;
  size_t len;                   /* without padding */
};
struct raw_table {
  unsigned char *buf;
  uint32_t n;
  struct raw_entry *e;
};

static void
raw_table_free (struct raw_table *t)
{
  free (t->buf);
  free (t->e);
}

static int
raw_table_read (struct qcow2_image *img, struct raw_table *t)
{
  const uint64_t bytes = img->snapshot_table_bytes;
  uint64_t pos = 0;

  t->n = img->hdr.nb_snapshots;
  t->buf = malloc (bytes ? bytes : 1);
  t->e = calloc (t->n ? t->n : 1, sizeof *t->e);
  if (t->buf == NULL || t->e == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  /* QEMU does not write the padding after the last entry. */
  if (bytes && io_pread_zero_padded (img->file, t->buf, bytes,
                         img->hdr.snapshots_offset) == -1)
    return -1;
  for (uint32_t i = 0; i < t->n; i++) {
    const unsigned char *f = t->buf + pos;
    uint64_t len;

    if (pos + SN_FIXED_LENGTH > bytes)
      return image_corrupt (img, "snapshot table entry %" PRIu32
                            " changed since the image was opened", i);
    len = SN_FIXED_LENGTH + (uint64_t) load_be32 (f + SN_EXTRA_SIZE)
      + load_be16 (f + SN_ID_LEN) + load_be16 (f + SN_NAME_LEN);
    if (pos + len > bytes)
      return image_corrupt (img, "snapshot table entry %" PRIu32
                            " changed since the image was opened", i);
    t->e[i].p = f;
    t->e[i].len = len;
    pos = ROUND_UP (pos + len, 8);
  }
  return 0;
}

static uint64_t
entry_l1_offset (const struct raw_entry *e)
{
  return load_be64 (e->p + SN_L1_OFFSET);
}

static uint32_t
entry_l1_size (const struct raw_entry *e)
{
  return load_be32 (e->p + SN_L1_SIZE);
}

/* The disk size, when the extra data records it. */
static uint64_t
entry_disk_size (const struct qcow2_image *img, const struct raw_entry *e)
{
  if (load_be32 (e->p + SN_EXTRA_SIZE) >= SN_EXTRA_DISK_SIZE + 8)
    return load_be64 (e->p + SN_FIXED_LENGTH + SN_EXTRA_DISK_SIZE);
  return img->hdr.size;
}

static bool
entry_id_is (const struct raw_entry *e, const char *s)
{
  size_t len = load_be16 (e->p + SN_ID_LEN);

  return strlen (s) == len &&
    memcmp (e->p + SN_FIXED_LENGTH + load_be32 (e->p + SN_EXTRA_SIZE),
            s, len) == 0;
}

static bool
entry_name_is (const struct raw_entry *e, const char *s)
{
  size_t id_len = load_be16 (e->p + SN_ID_LEN);
  size_t len = load_be16 (e->p + SN_NAME_LEN);

  return strlen (s) == len &&
    memcmp (e->p + SN_FIXED_LENGTH + load_be32 (e->p + SN_EXTRA_SIZE)
            + id_len, s, len) == 0;
}

/* The largest numeric ID. */
static unsigned long
max_id (const struct raw_table *t)
{
  unsigned long max = 0;

  for (uint32_t i = 0; i < t->n; i++) {
    const struct raw_entry *e = &t->e[i];
    size_t len = load_be16 (e->p + SN_ID_LEN);
    const unsigned char *id = e->p + SN_FIXED_LENGTH
      + load_be32 (e->p + SN_EXTRA_SIZE);
    unsigned long v = 0;
    size_t k;

    for (k = 0; k < len && id[k] >= '0' && id[k] <= '9' && v < ULONG_MAX / 10; k++)
      v = v * 10 + (id[k] - '0');
    if (k == len && len > 0 && v > max)
      max = v;
  }
  return max;
}

/* The table an edit builds: the kept entries, then maybe a new one. */
struct table {
  unsigned char *buf;
  uint64_t len;
};

static int
table_append (struct table *t, const unsigned char *entry, size_t len)
{
  uint64_t padded = ROUND_UP ((uint64_t) len, 8);
  unsigned char *p;

  if (t->len + padded > MAX_SNAPSHOT_TABLE) {
    diag_error ("the snapshot table would exceed %d bytes (QEMU's limit)",
                MAX_SNAPSHOT_TABLE);
    errno = EFBIG;
    return -1;
  }
  p = realloc (t->buf, t->len + padded);
  if (p == NULL) {
    diag_error ("realloc: %m");
    return -1;
  }
  memcpy (p + t->len, entry, len);
  memset (p + t->len + len, 0, padded - len);
  t->buf = p;
  t->len += padded;
  return 0;
}

/* Every entry but skip (-1: none). */
static int
table_keep (struct table *t, const struct raw_table *old, int64_t skip)
{
  for (uint32_t i = 0; i < old->n; i++)
    if (i != skip && table_append (t, old->e[i].p, old->e[i].len) == -1)
      return -1;
  return 0;
}

/* A table entry for the active state, its L1 copy at l1_offset.  The
 * extra data holds what QEMU 7.2 writes: VM state size, disk size and
 * instruction count (none of which a disk-only snapshot has but the
 * disk size).
 */
static unsigned char *
new_entry (struct qcow2_image *img, uint64_t l1_offset, const char *id,
           const char *name, size_t *len)
{
  size_t id_len = strlen (id), name_len = strlen (name);
  unsigned char *e;
  struct timespec now;

  *len = SN_FIXED_LENGTH + SN_EXTRA_LENGTH + id_len + name_len;
  e = calloc (1, *len);
  if (e == NULL) {
    diag_error ("calloc: %m");
    return NULL;
  }
  clock_gettime (CLOCK_REALTIME, &now);
  store_be64 (e + SN_L1_OFFSET, l1_offset);
  store_be32 (e + SN_L1_SIZE, img->l1_size);
  store_be16 (e + SN_ID_LEN, id_len);
  store_be16 (e + SN_NAME_LEN, name_len);
  store_be32 (e + SN_DATE_SEC, now.tv_sec);
  store_be32 (e + SN_DATE_NSEC, now.tv_nsec);
  store_be32 (e + SN_EXTRA_SIZE, SN_EXTRA_LENGTH);
  store_be64 (e + SN_FIXED_LENGTH + SN_EXTRA_DISK_SIZE, img->size);
  memcpy (e + SN_FIXED_LENGTH + SN_EXTRA_LENGTH, id, id_len);
  memcpy (e + SN_FIXED_LENGTH + SN_EXTRA_LENGTH + id_len, name, name_len);
  return e;
}

/* Switch the header to a table of n entries at offset, and the image's
 * view with it (the list of snapshots is read again).
 */
static int
switch_table (struct qcow2_image *img, const struct table *t, uint32_t n,
              uint64_t offset)
{
  const struct qcow2_options none = { .opener = NULL };
  unsigned char fields[12];

  store_be32 (fields, n);
  store_be64 (fields + 4, offset);
  if (header_switch (img, HDR_NB_SNAPSHOTS, fields, sizeof fields) == -1)
    return -1;
  snapshots_free (img->snapshots, img->hdr.nb_snapshots);
  img->snapshots = NULL;
  img->hdr.nb_snapshots = n;
  img->hdr.snapshots_offset = offset;
  img->snapshot_table_bytes = t->len;
  if (snapshot_open (img, &none) == -1)
    return write_failed (img);
  return overlap_index_rebuild (img);
}

static int
check_can_snapshot (struct qcow2_image *img, const char *name, uint32_t n)
{
  if (img->data != img->file) {
    diag_error ("%s: internal snapshots are not supported with an "
                "external data file", img->filename);
    errno = ENOTSUP;
    return -1;
  }
  if (img->w->refcount_max < 2) {
    diag_error ("%s: internal snapshots need refcounts of more than "
                "1 bit", img->filename);
    errno = ENOTSUP;
    return -1;
  }
  if (name[0] == '\0' || strlen (name) > QCOW2_SNAPSHOT_NAME_MAX) {
    diag_error ("%s: snapshot name must be 1 to %d bytes",
                img->filename, QCOW2_SNAPSHOT_NAME_MAX);
    errno = EINVAL;
    return -1;
  }
  if (n >= MAX_SNAPSHOTS) {
    diag_error ("%s: the image has %d snapshots, the most it may have",
                img->filename, MAX_SNAPSHOTS);
    errno = EFBIG;
    return -1;
  }
  return 0;
}

/* The active L1 table as a snapshot keeps it: its clusters are shared
 * from now on, so no entry says COPIED.
 */
static int
place_l1_copy (struct qcow2_image *img, uint64_t *offset)
{
  uint64_t bytes = (uint64_t) img->l1_size * 8;
  unsigned char *be;
  int r;

  *offset = 0;
  if (bytes == 0)
    return 0;
  be = malloc (bytes);
  if (be == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  for (uint32_t i = 0; i < img->l1_size; i++)
    store_be64 (be + i * 8, img->l1[i] & ~ENTRY_COPIED);
  r = table_place (img, be, bytes, offset);
  free (be);
  return r;
}

static int
create_locked (struct qcow2_image *img, const char *name)
{
  const uint32_t n = img->hdr.nb_snapshots;
  const uint64_t old_offset = img->hdr.snapshots_offset;
  const uint64_t old_bytes = img->snapshot_table_bytes;
  struct raw_table old = { 0 };
  struct table t = { 0 };
  uint64_t l1_offset;
  unsigned char *entry = NULL;
  uint64_t table_offset;
  size_t entry_len;
  char id[32];
  int r = -1;

  if (edit_begin (img, "create a snapshot") == -1 ||
      check_can_snapshot (img, name, n) == -1 ||
      raw_table_read (img, &old) == -1)
    goto out;
  snprintf (id, sizeof id, "%lu", max_id (&old) + 1);

  /* Raised refcounts and cleared COPIED flags, the L1 copy and the new
   * table are all durable before the header names the snapshot.
   */
  if (tree_raise (img, img->l1, img->l1_size) == -1 ||
      tree_sync_copied (img, img->l1, img->l1_size, true) == -1 ||
      place_l1_copy (img, &l1_offset) == -1 ||
      (entry = new_entry (img, l1_offset, id, name, &entry_len)) == NULL ||
      table_keep (&t, &old, -1) == -1 ||
      table_append (&t, entry, entry_len) == -1 ||
      table_place (img, t.buf, t.len, &table_offset) == -1 ||
      checkpoint (img) == -1 ||
      switch_table (img, &t, n + 1, table_offset) == -1)
    goto out;
  if (old_bytes && refcount_release (img, old_offset, old_bytes) == -1)
    goto out;
  r = checkpoint (img);

 out:
  free (entry);
  free (t.buf);
  raw_table_free (&old);
  return r;
}

int
qcow2_snapshot_create (struct qcow2_image *img, const char *name)
{
  if (qcow2_prepare_write (img) == -1)
    return -1;
  SCOPED_WRLOCK (&img->meta_lock);
  return create_locked (img, name);
}

/* The first snapshot named name (qemu-img -d looks names up, not IDs),
 * or with want_id also by ID first (-a).
 */
static int64_t
find_entry (struct qcow2_image *img, const struct raw_table *t,
            const char *want, bool want_id)
{
  for (uint32_t i = 0; want_id && i < t->n; i++)
    if (entry_id_is (&t->e[i], want))
      return i;
  for (uint32_t i = 0; i < t->n; i++)
    if (entry_name_is (&t->e[i], want))
      return i;
  diag_error ("%s: snapshot %s not found%s", img->filename, want,
              want_id ? " (by ID or name)" : "");
  errno = ENOENT;
  return -1;
}

/* Drop a snapshot's tree and L1 table once the header no longer names
 * it, then give the active tables back the COPIED flags of the
 * clusters that are theirs alone again.  Two checkpoints: the first
 * applies the releases, the second writes them.
 */
static int
release_snapshot (struct qcow2_image *img, uint64_t l1_offset,
                  uint32_t l1_size)
{
  uint64_t *l1;
  int r;

  if (l1_table_read (img, l1_offset, l1_size, &l1) == -1)
    return write_failed (img);
  r = tree_release (img, l1, l1_size);
  free (l1);
  if (r == -1 ||
      (l1_size &&
       refcount_release (img, l1_offset, (uint64_t) l1_size * 8) == -1) ||
      checkpoint (img) == -1 ||
      checkpoint (img) == -1 ||
      tree_sync_copied (img, img->l1, img->l1_size, true) == -1)
    return write_failed (img);
  return checkpoint (img);
}

static int
delete_locked (struct qcow2_image *img, const char *name)
{
  const uint64_t old_offset = img->hdr.snapshots_offset;
  const uint64_t old_bytes = img->snapshot_table_bytes;
  struct raw_table old = { 0 };
  struct table t = { 0 };
  uint64_t table_offset = 0;
  int64_t k;
  int r = -1;

  if (edit_begin (img, "delete a snapshot") == -1 ||
      raw_table_read (img, &old) == -1 ||
      (k = find_entry (img, &old, name, false)) == -1 ||
      table_keep (&t, &old, k) == -1 ||
      (t.len && table_place (img, t.buf, t.len, &table_offset) == -1) ||
      checkpoint (img) == -1 ||
      switch_table (img, &t, old.n - 1, table_offset) == -1 ||
      refcount_release (img, old_offset, old_bytes) == -1)
    goto out;
  r = release_snapshot (img, entry_l1_offset (&old.e[k]),
                        entry_l1_size (&old.e[k]));

 out:
  free (t.buf);
  raw_table_free (&old);
  return r;
}

int
qcow2_snapshot_delete (struct qcow2_image *img, const char *name)
{
  if (qcow2_prepare_write (img) == -1)
    return -1;
  SCOPED_WRLOCK (&img->meta_lock);
  return delete_locked (img, name);
}

/* The header fields from size to l1_table_offset, one sector: the
 * switch to another active L1 table and virtual size at once.
 */
static int
switch_active (struct qcow2_image *img, uint64_t size, uint64_t *l1,
               uint32_t l1_size, uint64_t l1_offset)
{
  unsigned char fields[HDR_REFCOUNT_TABLE_OFFSET - HDR_SIZE];

  store_be64 (fields, size);
  store_be32 (fields + (HDR_CRYPT_METHOD - HDR_SIZE), img->hdr.crypt_method);
  store_be32 (fields + (HDR_L1_SIZE - HDR_SIZE), l1_size);
  store_be64 (fields + (HDR_L1_TABLE_OFFSET - HDR_SIZE), l1_offset);
  if (header_switch (img, HDR_SIZE, fields, sizeof fields) == -1)
    return -1;
  img->l1 = l1;                 /* the caller frees the old one */
  img->l1_size = img->hdr.l1_size = l1_size;
  img->hdr.l1_table_offset = l1_offset;
  img->size = img->hdr.size = size;
  img->w->l1_dirty_first = img->w->l1_dirty_end = 0;
  return overlap_index_rebuild (img);
}

/* A copy of the snapshot's L1 table for the active state: its tree
 * gains a reference (so its COPIED flags are all cleared).
 */
static int
place_active_copy (struct qcow2_image *img, const struct raw_entry *e,
                   uint64_t **l1, uint64_t *offset)
{
  const uint32_t n = entry_l1_size (e);
  unsigned char *be;
  int r;

  *offset = 0;
  if (l1_table_read (img, entry_l1_offset (e), n, l1) == -1 ||
      tree_raise (img, *l1, n) == -1 ||
      tree_sync_copied (img, *l1, n, false) == -1)
    return -1;
  if (n == 0)
    return 0;
  be = malloc ((uint64_t) n * 8);
  if (be == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  table_store (be, *l1, n, 0);
  r = table_place (img, be, (uint64_t) n * 8, offset);
  free (be);
  return r;
}

static int
apply_locked (struct qcow2_image *img, const char *want)
{
  const uint64_t old_offset = img->hdr.l1_table_offset;
  const uint32_t old_size = img->l1_size;
  uint64_t *old_l1 = img->l1, *l1 = NULL, l1_offset;
  struct raw_table old = { 0 };
  int64_t k;
  int r = -1;

  if (edit_begin (img, "apply a snapshot") == -1 ||
      raw_table_read (img, &old) == -1 ||
      (k = find_entry (img, &old, want, true)) == -1 ||
      place_active_copy (img, &old.e[k], &l1, &l1_offset) == -1 ||
      checkpoint (img) == -1 ||
      switch_active (img, entry_disk_size (img, &old.e[k]), l1,
                     entry_l1_size (&old.e[k]), l1_offset) == -1) {
    if (img->l1 != l1)
      free (l1);
    goto out;
  }
  /* The old active tree loses its reference. */
  if (tree_release (img, old_l1, old_size) == -1 ||
      (old_size &&
       refcount_release (img, old_offset, (uint64_t) old_size * 8) == -1) ||
      checkpoint (img) == -1 ||
      checkpoint (img) == -1 ||
      tree_sync_copied (img, img->l1, img->l1_size, true) == -1) {
    write_failed (img);
    goto out;
  }
  r = checkpoint (img);

 out:
  if (img->l1 != old_l1)
    free (old_l1);
  raw_table_free (&old);
  return r;
}

int
qcow2_snapshot_apply (struct qcow2_image *img, const char *id_or_name)
{
  if (qcow2_prepare_write (img) == -1)
    return -1;
  SCOPED_WRLOCK (&img->meta_lock);
  return apply_locked (img, id_or_name);
}
