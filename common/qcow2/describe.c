/* The one-line summary of an open image (qcow2_description): what
 * `qemu-img info` would say about it, in a stable order, for the NBD
 * export description and the debug log.
 *
 *   qcow2 v3, 64 KiB clusters, 16-bit refcounts, zlib compression,
 *   not encrypted[, backing a.qcow2 (qcow2) > b.raw (raw)][, 2 snapshots
 *   (exporting 1 "name")][, lazy refcounts][, extended L2]
 *   [, data file d.raw (raw)][, dirty][, corrupt]
 *
 * The fields are those of the header and its extensions (qcow2.txt,
 * "Header" and "Header extensions"), read when the image was opened.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "internal.h"
#include "io.h"

/* NBD caps strings at 4096 bytes (NBD_MAX_STRING); long backing file
 * names are cut short to stay under it.
 */
#define MAX_DESCRIPTION 4000

static void
put_size (FILE *fp, uint64_t bytes)
{
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
    fprintf (fp, "%" PRIu64 " MiB", bytes / (1024 * 1024));
  else if (bytes >= 1024 && bytes % 1024 == 0)
    fprintf (fp, "%" PRIu64 " KiB", bytes / 1024);
  else
    fprintf (fp, "%" PRIu64 " bytes", bytes);
}

/* A name recorded in the image, which may be hostile: the description
 * stays one line of printable text.
 */
static void
put_name (FILE *fp, const char *name)
{
  for (; *name; name++)
    fputc (*name >= 0x20 && *name < 0x7f ? *name : '?', fp);
}

static const char *
encryption_name (uint32_t crypt_method)
{
  switch (crypt_method) {
  case CRYPT_NONE: return "not encrypted";
  case CRYPT_AES: return "AES encryption";
  case CRYPT_LUKS: return "LUKS encryption";
  default: return "unknown encryption";
  }
}

static void
put_format (FILE *fp, const struct qcow2_image *img)
{
  const struct qcow2_header *h = &img->hdr;

  if (img->qcow1) {
    fputs ("qcow v1, ", fp);
    put_size (fp, img->cluster_size);
    fputs (" clusters, zlib compression, ", fp);
  }
  else {
    fprintf (fp, "qcow2 v%" PRIu32 ", ", h->version);
    put_size (fp, img->cluster_size);
    fprintf (fp, " clusters, %u-bit refcounts, %s compression, ",
             1u << h->refcount_order,
             h->compression_type == 1 ? "zstd" : "zlib");
  }
  fputs (encryption_name (h->crypt_method), fp);
}

/* The names as each image records them, and the format that serves
 * them (recorded or probed).  Under backing=none the chain stops at the
 * first name, which was not opened.
 */
static void
put_backing_chain (FILE *fp, const struct qcow2_image *img)
{
  const char *sep = ", backing ";

  while (img && img->hdr.backing_file) {
    const struct backing *b = img->backing;

    fputs (sep, fp);
    put_name (fp, img->hdr.backing_file);
    fputs (" (", fp);
    if (b == NULL) {
      put_name (fp, img->hdr.backing_format ? img->hdr.backing_format
                : "format unknown");
      fputs (", not opened)", fp);
    }
    else if (b->raw)
      fputs ("raw)", fp);
    else
      fputs (b->qcow2->qcow1 ? "qcow)" : "qcow2)", fp);
    sep = " > ";
    img = b ? b->qcow2 : NULL;
  }
}

static void
put_features (FILE *fp, const struct qcow2_image *img)
{
  const struct qcow2_header *h = &img->hdr;

  if (h->nb_snapshots) {
    fprintf (fp, ", %" PRIu32 " snapshot%s", h->nb_snapshots,
             h->nb_snapshots == 1 ? "" : "s");
    if (img->exported_snapshot)
      fprintf (fp, " (exporting %s)", img->exported_snapshot);
  }
  if (h->compatible & COMPAT_LAZY_REFCOUNTS)
    fputs (", lazy refcounts", fp);
  if (img->extended_l2)
    fputs (", extended L2", fp);
  if (img->data != img->file) {
    fputs (", data file ", fp);
    put_name (fp, h->data_file ? h->data_file : img->data->name);
    fprintf (fp, " (%s)",
             h->autoclear & AUTOCLEAR_DATA_FILE_RAW ? "raw" : "not raw");
  }
  if (h->incompatible & INCOMPAT_DIRTY)
    fputs (", dirty", fp);
  if (h->incompatible & INCOMPAT_CORRUPT)
    fputs (", corrupt", fp);
}

int
image_describe (struct qcow2_image *img)
{
  char *s = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&s, &len);

  if (fp == NULL) {
    diag_error ("open_memstream: %m");
    return -1;
  }
  put_format (fp, img);
  put_backing_chain (fp, img);
  put_features (fp, img);
  if (fclose (fp) == EOF) {
    diag_error ("open_memstream: %m");
    free (s);
    return -1;
  }
  if (len > MAX_DESCRIPTION)
    strcpy (&s[MAX_DESCRIPTION - 3], "...");
  free (img->description);
  img->description = s;
  diag_debug ("%s: %s", img->filename, s);
  return 0;
}
