/* Internal snapshots ("Snapshots" in qcow2.txt).
 *
 * The snapshot table is read and validated whenever an image has one:
 * every entry must lie inside the file, carry at most 1024 bytes of
 * extra data, and point at an L1 table that lies inside the file and
 * covers the snapshot's disk size (for a check, only the one served:
 * the check reports the others).  The list is logged at debug level.
 * When a snapshot is asked for, its L1 table replaces the active one
 * and the image is served read-only with the snapshot's own size.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "rounding.h"
#include "snapshot-format.h"

void
snapshots_free (struct qcow2_snapshot_info *sn, uint32_t n)
{
  if (sn == NULL)
    return;
  for (uint32_t i = 0; i < n; i++) {
    free (sn[i].id);
    free (sn[i].name);
  }
  free (sn);
}

/* Names go to the log: show only printable ASCII. */
static char *
printable_copy (const unsigned char *p, size_t len)
{
  char *s = malloc (len + 1);

  if (s == NULL) {
    diag_error ("malloc: %m");
    return NULL;
  }
  for (size_t i = 0; i < len; i++)
    s[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
  s[len] = '\0';
  return s;
}

/* The L1 table of a snapshot, like the active one, must be aligned,
 * inside the file and large enough for the snapshot's disk size.
 */
static int
check_snapshot_l1 (struct qcow2_image *img, uint32_t i,
                   const struct qcow2_snapshot_info *sn)
{
  const unsigned shift = img->l2_bits + img->cluster_bits;
  uint64_t needed = (sn->disk_size >> shift)
    + ((sn->disk_size & ((UINT64_C (1) << shift) - 1)) != 0);
  uint64_t bytes = (uint64_t) sn->l1_size * 8;

  if (needed > sn->l1_size)
    return image_corrupt (img, "snapshot %" PRIu32 " has an L1 table of %"
                          PRIu32 " entries, too small for its disk size %"
                          PRIu64, i, sn->l1_size, sn->disk_size);
  if (bytes > MAX_L1_BYTES)
    return image_corrupt (img, "snapshot %" PRIu32 " has an L1 table of %"
                          PRIu32 " entries, more than the limit",
                          i, sn->l1_size);
  if (sn->l1_size == 0)
    return 0;
  if (sn->l1_offset == 0 || !IS_ALIGNED (sn->l1_offset, img->cluster_size))
    return image_corrupt (img, "snapshot %" PRIu32 " L1 table offset %#"
                          PRIx64 " is not a valid cluster offset",
                          i, sn->l1_offset);
  if (!range_within (sn->l1_offset, bytes, img->file_size))
    return image_corrupt (img, "snapshot %" PRIu32 " L1 table (offset %#"
                          PRIx64 ", %" PRIu64 " bytes) lies beyond the end "
                          "of the file", i, sn->l1_offset, bytes);
  return 0;
}

/* Read the table entry at *offset into sn and move *offset past it. */
static int
read_entry (struct qcow2_image *img, uint32_t i, uint64_t *offset,
            struct qcow2_snapshot_info *sn, bool check)
{
  unsigned char fixed[SN_FIXED_LENGTH];
  unsigned char *var;
  uint32_t extra_size;
  uint16_t id_len, name_len;
  uint64_t var_len;

  if (!range_within (*offset, SN_FIXED_LENGTH, img->file_size) ||
      *offset - img->hdr.snapshots_offset > MAX_SNAPSHOT_TABLE)
    return image_corrupt (img, "snapshot table entry %" PRIu32 " at %#" PRIx64
                          " lies beyond the end of the file or the table "
                          "limit", i, *offset);
  if (io_pread (img->file, fixed, sizeof fixed, *offset) == -1)
    return -1;

  sn->l1_offset = load_be64 (fixed + SN_L1_OFFSET);
  sn->l1_size = load_be32 (fixed + SN_L1_SIZE);
  id_len = load_be16 (fixed + SN_ID_LEN);
  name_len = load_be16 (fixed + SN_NAME_LEN);
  sn->date_sec = load_be32 (fixed + SN_DATE_SEC);
  sn->date_nsec = load_be32 (fixed + SN_DATE_NSEC);
  sn->vm_clock_nsec = load_be64 (fixed + SN_VM_CLOCK_NSEC);
  sn->vm_state_size = load_be32 (fixed + SN_VM_STATE_SIZE);
  extra_size = load_be32 (fixed + SN_EXTRA_SIZE);
  if (extra_size > MAX_SNAPSHOT_EXTRA)
    return image_corrupt (img, "snapshot table entry %" PRIu32 " has %" PRIu32
                          " bytes of extra data (at most %d)",
                          i, extra_size, MAX_SNAPSHOT_EXTRA);

  var_len = (uint64_t) extra_size + id_len + name_len;
  /* QEMU's limit is on where the last entry ends. */
  if (*offset + SN_FIXED_LENGTH + var_len - img->hdr.snapshots_offset >
      MAX_SNAPSHOT_TABLE)
    return image_corrupt (img, "snapshot table entry %" PRIu32 " ends past "
                          "the table limit (%d bytes)", i, MAX_SNAPSHOT_TABLE);
  if (!range_within (*offset + SN_FIXED_LENGTH, var_len, img->file_size))
    return image_corrupt (img, "snapshot table entry %" PRIu32 " at %#" PRIx64
                          " runs past the end of the file", i, *offset);
  var = malloc (var_len + 1);
  if (var == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  if (io_pread (img->file, var, var_len, *offset + SN_FIXED_LENGTH) == -1) {
    free (var);
    return -1;
  }
  /* Extra data: version 3 always has the first two fields; without
   * them the snapshot has the size of the image.
   */
  sn->disk_size = img->hdr.size;
  if (extra_size >= SN_EXTRA_VM_STATE_SIZE + 8)
    sn->vm_state_size = load_be64 (var + SN_EXTRA_VM_STATE_SIZE);
  if (extra_size >= SN_EXTRA_DISK_SIZE + 8)
    sn->disk_size = load_be64 (var + SN_EXTRA_DISK_SIZE);
  /* All ones: not recorded. */
  if (extra_size >= SN_EXTRA_ICOUNT + 8) {
    sn->icount = load_be64 (var + SN_EXTRA_ICOUNT);
    sn->has_icount = sn->icount != UINT64_MAX;
  }
  sn->id = printable_copy (var + extra_size, id_len);
  sn->name = printable_copy (var + extra_size + id_len, name_len);
  free (var);
  if (sn->id == NULL || sn->name == NULL)
    return -1;

  *offset = ROUND_UP (*offset + SN_FIXED_LENGTH + var_len, 8);
  return check ? 0 : check_snapshot_l1 (img, i, sn);
}

/* Like QEMU: an ID matches first, then a name. */
static const struct qcow2_snapshot_info *
find_snapshot (const struct qcow2_snapshot_info *sn, uint32_t n, const char *want)
{
  for (uint32_t i = 0; i < n; i++)
    if (strcmp (sn[i].id, want) == 0)
      return &sn[i];
  for (uint32_t i = 0; i < n; i++)
    if (strcmp (sn[i].name, want) == 0)
      return &sn[i];
  return NULL;
}

static int
select_snapshot (struct qcow2_image *img, const struct qcow2_snapshot_info *sn)
{
  /* Validated already, unless opened for a check. */
  if (check_snapshot_l1 (img, sn - img->snapshots, sn) == -1)
    return -1;
  free (img->l1);
  img->l1 = NULL;
  if (image_load_l1 (img, sn->l1_offset, sn->l1_size) == -1)
    return -1;
  img->size = sn->disk_size;
  img->readonly = true;
  if (asprintf (&img->exported_snapshot, "%s \"%s\"", sn->id, sn->name) == -1) {
    img->exported_snapshot = NULL;
    diag_error ("asprintf: %m");
    return -1;
  }
  diag_debug ("%s: serving snapshot %s (%s), %" PRIu64 " bytes, read-only",
              img->filename, sn->id, sn->name, sn->disk_size);
  return 0;
}

int
snapshot_open (struct qcow2_image *img, const struct qcow2_options *opts)
{
  const uint32_t n = img->hdr.nb_snapshots;
  uint64_t offset = img->hdr.snapshots_offset;
  struct qcow2_snapshot_info *sn = NULL;
  const struct qcow2_snapshot_info *want;
  int r = -1;

  if (n == 0) {
    if (opts->snapshot == NULL)
      return 0;
    diag_error ("%s: snapshot %s not found: the image has no snapshots",
                img->filename, opts->snapshot);
    errno = ENOENT;
    return -1;
  }

  sn = calloc (n, sizeof *sn);
  if (sn == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (read_entry (img, i, &offset, &sn[i], opts->check) == -1)
      goto out;
    diag_debug ("%s: snapshot id %s name %s: disk size %" PRIu64
                ", vm state %" PRIu64 " bytes, date %" PRIu32,
                img->filename, sn[i].id, sn[i].name, sn[i].disk_size,
                sn[i].vm_state_size, sn[i].date_sec);
  }

  img->snapshot_table_bytes = offset - img->hdr.snapshots_offset;
  img->snapshots = sn;
  sn = NULL;

  r = 0;
  if (opts->snapshot) {
    want = find_snapshot (img->snapshots, n, opts->snapshot);
    if (want == NULL) {
      diag_error ("%s: snapshot %s not found (by ID or name)",
                  img->filename, opts->snapshot);
      errno = ENOENT;
      r = -1;
    }
    else
      r = select_snapshot (img, want);
  }

 out:
  {
    int e = errno;
    snapshots_free (sn, n);
    errno = e;
  }
  return r;
}
