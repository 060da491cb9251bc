/* The one list of what in the image file is metadata: every range the
 * header, the tables and the extensions give, in the categories of
 * QEMU's overlap check (qcow2.txt "Header", "Host cluster management",
 * "Cluster mapping", "Snapshots", "Header extensions").  Refcount
 * repair counts it, the overlap index (overlap.c) is filled from it.
 *
 * Header extensions, the backing file name and the feature name table
 * live in cluster 0, the header's range.  The bitmap directory is not
 * listed: a writer clears the bitmaps autoclear bit before its first
 * write (writeback.c), after which "Bitmaps extension" says the
 * extension and everything it names must be ignored.
 *
 * Called with the write state set up (the refcount table loaded).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "byte-order.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "write-state.h"

const char *
metadata_kind_name (enum metadata_kind kind)
{
  switch (kind) {
  case MD_HEADER: return "header";
  case MD_ACTIVE_L1: return "L1 table";
  case MD_ACTIVE_L2: return "L2 table";
  case MD_REFTABLE: return "refcount table";
  case MD_REFBLOCK: return "refcount block";
  case MD_SNAPSHOT_TABLE: return "snapshot table";
  case MD_INACTIVE_L1: return "L1 table of a snapshot";
  case MD_INACTIVE_L2: return "L2 table of a snapshot";
  case MD_CRYPTO_HEADER: return "encryption header";
  }
  return "metadata";
}

struct walk {
  struct qcow2_image *img;
  unsigned kinds;
  metadata_fn fn;
  void *opaque;
};

/* Report one range if its kind was asked for and it is not empty. */
static int
report (struct walk *wk, enum metadata_kind kind, uint64_t offset,
        uint64_t bytes)
{
  if (!(wk->kinds & MD_BIT (kind)) || bytes == 0)
    return 0;
  return wk->fn (wk->img, kind, offset, bytes, wk->opaque);
}

/* The L2 tables of an L1 table in host byte order, one call for each
 * entry that names one (a table named twice is reported twice).
 */
static int
report_l2_tables (struct walk *wk, enum metadata_kind kind,
                  const uint64_t *l1, uint32_t l1_size)
{
  int r = 0;

  if (!(wk->kinds & MD_BIT (kind)))
    return 0;
  for (uint32_t i = 0; i < l1_size && r == 0; i++) {
    uint64_t l2 = l1[i] & L1E_OFFSET_MASK;

    if (l2)
      r = report (wk, kind, l2, wk->img->cluster_size);
  }
  return r;
}

/* A snapshot's L1 table, then (read from the file) its L2 tables. */
static int
report_snapshot (struct walk *wk, const struct qcow2_snapshot_info *sn)
{
  uint64_t bytes = (uint64_t) sn->l1_size * 8;
  uint64_t *l1;
  int r;

  r = report (wk, MD_INACTIVE_L1, sn->l1_offset, bytes);
  if (r != 0 || sn->l1_size == 0 || !(wk->kinds & MD_BIT (MD_INACTIVE_L2)))
    return r;
  l1 = malloc (bytes);
  if (l1 == NULL) {
    diag_error ("malloc: %m");
    return -1;
  }
  r = io_pread (wk->img->file, l1, bytes, sn->l1_offset);
  for (uint32_t i = 0; r == 0 && i < sn->l1_size; i++)
    l1[i] = load_be64 (&l1[i]);
  if (r == 0)
    r = report_l2_tables (wk, MD_INACTIVE_L2, l1, sn->l1_size);
  free (l1);
  return r;
}

int
metadata_for_each (struct qcow2_image *img, unsigned kinds, metadata_fn fn,
                   void *opaque)
{
  const struct write_state *w = img->w;
  struct walk wk = { .img = img, .kinds = kinds, .fn = fn, .opaque = opaque };
  int r;

  if ((r = report (&wk, MD_HEADER, 0, img->cluster_size)) != 0 ||
      (r = report (&wk, MD_ACTIVE_L1, img->hdr.l1_table_offset,
                   (uint64_t) img->l1_size * 8)) != 0 ||
      (r = report_l2_tables (&wk, MD_ACTIVE_L2, img->l1, img->l1_size)) != 0 ||
      (r = report (&wk, MD_REFTABLE, w->reftable_offset,
                   w->reftable_entries * 8)) != 0)
    return r;
  for (uint64_t i = 0; i < w->reftable_entries && (kinds & MD_BIT (MD_REFBLOCK)); i++)
    if (w->reftable[i] &&
        (r = report (&wk, MD_REFBLOCK, w->reftable[i], img->cluster_size)) != 0)
      return r;
  if ((r = report (&wk, MD_SNAPSHOT_TABLE, img->hdr.snapshots_offset,
                   img->snapshot_table_bytes)) != 0)
    return r;
  for (uint32_t i = 0; i < img->hdr.nb_snapshots; i++)
    if ((r = report_snapshot (&wk, &img->snapshots[i])) != 0)
      return r;
  if (img->hdr.crypto_offset)
    r = report (&wk, MD_CRYPTO_HEADER, img->hdr.crypto_offset,
                img->hdr.crypto_length);
  return r;
}
