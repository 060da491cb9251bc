/* What an open image is (qcow2-info.h): the validated header, the
 * snapshot table and the layer below, for qcow2-tool info.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "io.h"
#include "qcow2-info.h"

void
qcow2_get_info (const struct qcow2_image *img, struct qcow2_info *info)
{
  const struct qcow2_header *h = &img->hdr;

  *info = (struct qcow2_info) {
    .qcow1 = img->qcow1,
    .version = img->qcow1 ? 1 : h->version,
    .virtual_size = h->size,
    .cluster_size = img->cluster_size,
    .compression_type = h->compression_type,
    .crypt_method = h->crypt_method,
    .backing_file = h->backing_file,
    .backing_format = h->backing_format,
    .data_file = h->data_file,
    .data_file_raw = (h->autoclear & AUTOCLEAR_DATA_FILE_RAW) != 0,
    .lazy_refcounts = (h->compatible & COMPAT_LAZY_REFCOUNTS) != 0,
    .refcount_bits = 1u << h->refcount_order,
    .extended_l2 = img->extended_l2,
    .corrupt = (h->incompatible & INCOMPAT_CORRUPT) != 0,
    .dirty = (h->incompatible & INCOMPAT_DIRTY) != 0,
    .bitmaps = (h->autoclear & AUTOCLEAR_BITMAPS) != 0,
    .nb_snapshots = img->snapshots ? h->nb_snapshots : 0,
    .snapshots = img->snapshots,
  };
}

void
qcow2_get_backing (const struct qcow2_image *img, struct qcow2_backing_info *b)
{
  const struct backing *below = img->backing;

  *b = (struct qcow2_backing_info) { .name = NULL };
  if (below == NULL)
    return;
  b->qcow2 = below->qcow2;
  b->name = below->qcow2 ? below->qcow2->filename : below->raw->name;
  b->size = below->size;
}

const char *
qcow2_filename (const struct qcow2_image *img)
{
  return img->filename;
}

char *
qcow2_path_combine (const char *base, const char *name)
{
  const char *slash = strrchr (base, '/');
  char *path;

  if (name[0] == '/' || slash == NULL)
    return strdup (name);
  if (asprintf (&path, "%.*s%s", (int) (slash - base + 1), base, name) == -1)
    return NULL;
  return path;
}
