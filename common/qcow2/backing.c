/* The layer below an image ("Header": backing_file_offset, and the
 * backing format name extension in qcow2.txt).
 *
 * A backing file is another qcow2 (or qcow v1) image, opened read-only
 * with its own chain below it, or a raw file.  The name comes from an
 * image that may be hostile, so: a relative name is taken from the
 * directory of the image that records it (as QEMU does), the chain is
 * bounded in depth, a file already in the chain is a loop, and every
 * failure names the image that asked for the file.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "diag.h"
#include "internal.h"
#include "io.h"

#define DEFAULT_MAX_CHAIN_DEPTH 16

char *
image_dir (const struct qcow2_image *img)
{
  return named_file_dir (img->filename);
}

char *
resolve_name (const char *dir, const char *name)
{
  char *path;

  if (name[0] == '/' || dir == NULL)
    path = strdup (name);
  else if (asprintf (&path, "%s/%s", dir, name) == -1)
    path = NULL;
  if (path == NULL)
    diag_error ("strdup: %m");
  return path;
}

enum backing_format { FMT_QCOW2, FMT_RAW };

/* The format recorded in the image, or if none, what the file looks
 * like.  Like QEMU, an unnamed format is probed: a file starting with
 * the qcow magic is an image (qcow2 or qcow v1), anything else is raw.
 */
static int
choose_format (struct qcow2_image *img, struct io *file,
               enum backing_format *fmt)
{
  const char *name = img->hdr.backing_format;
  unsigned char magic[4];

  if (name) {
    if (strcmp (name, "qcow2") == 0 || strcmp (name, "qcow") == 0)
      *fmt = FMT_QCOW2;
    else if (strcmp (name, "raw") == 0 || strcmp (name, "file") == 0)
      *fmt = FMT_RAW;
    else {
      diag_error ("%s: backing file %s has format '%s', which is not "
                  "supported (only qcow2, qcow and raw)",
                  img->filename, file->name, name);
      errno = ENOTSUP;
      return -1;
    }
    return 0;
  }

  if (io_pread_zero_padded (file, magic, sizeof magic, 0) == -1)
    return -1;
  *fmt = load_be32 (magic) == QCOW2_MAGIC ? FMT_QCOW2 : FMT_RAW;
  diag_debug ("%s: backing file %s has no recorded format; probed as %s",
              img->filename, file->name, *fmt == FMT_QCOW2 ? "qcow2" : "raw");
  return 0;
}

/* Refuse a chain that is too deep or comes back to a file it holds
 * (where the opener can tell files apart).
 */
static int
check_chain (struct qcow2_image *img, const struct qcow2_options *opts,
             const struct chain_link *self, struct io *file)
{
  unsigned max = opts->max_chain_depth ? opts->max_chain_depth
    : DEFAULT_MAX_CHAIN_DEPTH;
  uint64_t dev, ino;

  if (self->depth + 1 > max) {
    diag_error ("%s: backing chain is too deep (more than %u backing files)",
                img->filename, max);
    errno = ELOOP;
    return -1;
  }
  if (io_identify (file, &dev, &ino) == -1)
    return errno == ENOTSUP ? 0 : -1;
  for (const struct chain_link *l = self; l; l = l->above) {
    if (l->identified && l->dev == dev && l->ino == ino) {
      diag_error ("%s: backing file %s is already part of the backing "
                  "chain (loop)", img->filename, file->name);
      errno = ELOOP;
      return -1;
    }
  }
  return 0;
}

/* file is consumed. */
static int
open_image (struct qcow2_image *img, const struct qcow2_options *opts,
            const struct chain_link *self, struct io *file,
            struct backing *b)
{
  struct qcow2_options sub = {
    .opener = opts->opener,
    .readonly = true,
    .l2_cache_size = opts->l2_cache_size,
    .backing = QCOW2_BACKING_AUTO,
    .max_chain_depth = opts->max_chain_depth,
    .passphrase = opts->passphrase,     /* one passphrase for the chain */
    .metadata_only = opts->metadata_only,
    .kdf_limits = opts->kdf_limits,
    .debug = opts->debug,
  };
  char *path = strdup (file->name);

  if (path == NULL) {
    diag_error ("strdup: %m");
    io_close (file);
    return -1;
  }
  /* The cause was reported where it was found; the top image adds
   * one line to say which chain it belongs to.
   */
  sub.filename = path;
  if (image_open (&sub, self, file, &b->qcow2) == -1) {
    int e = errno;
    if (self->depth == 0)
      diag_error ("%s: cannot open backing file %s", img->filename, path);
    free (path);
    errno = e;
    return -1;
  }
  free (path);
  b->size = qcow2_size (b->qcow2);
  return 0;
}

static int
open_raw (struct backing *b, struct io *file)
{
  int64_t size = io_size (file);

  b->raw = file;
  if (size == -1)
    return -1;                  /* backing_close frees the rest */
  b->size = size;
  return 0;
}

int
backing_open (struct qcow2_image *img, const struct qcow2_options *opts,
              const struct chain_link *above)
{
  const char *name = img->hdr.backing_file;
  struct chain_link self = { .above = above };
  char *dir = NULL, *path = NULL;
  enum backing_format fmt;
  struct io *file = NULL;
  struct backing *b;
  int r = -1;

  if (name == NULL ||
      named_file_policy (img, opts, QCOW2_FILE_BACKING) == FILE_SKIP)
    return 0;
  if (strncmp (name, "json:", 5) == 0) {
    diag_error ("%s: backing file names in json: syntax are not supported",
                img->filename);
    errno = ENOTSUP;
    return -1;
  }

  self.depth = above ? above->depth + 1 : 0;
  if (io_identify (img->file, &self.dev, &self.ino) == 0)
    self.identified = true;
  else if (errno != ENOTSUP)
    return -1;

  dir = image_dir (img);
  if (dir == NULL || (path = resolve_name (dir, name)) == NULL)
    goto out;
  file = named_file_open (img, opts, QCOW2_FILE_BACKING, path, name, false);
  if (file == NULL ||
      check_chain (img, opts, &self, file) == -1 ||
      choose_format (img, file, &fmt) == -1)
    goto out;

  b = calloc (1, sizeof *b);
  if (b == NULL) {
    diag_error ("calloc: %m");
    goto out;
  }
  img->backing = b;
  r = fmt == FMT_QCOW2 ? open_image (img, opts, &self, file, b)
    : open_raw (b, file);
  file = NULL;
  if (r == 0)
    diag_debug ("%s: backing file %s (%s, %" PRIu64 " bytes)", img->filename,
                path, fmt == FMT_QCOW2 ? "image" : "raw", b->size);

 out:
  {
    int e = errno;
    io_close (file);
    free (dir);
    free (path);
    errno = e;
  }
  return r;
}

void
backing_close (struct backing *b)
{
  if (b == NULL)
    return;
  qcow2_close (b->qcow2);
  io_close (b->raw);
  free (b);
}

/* Like QEMU's file driver: SEEK_DATA/SEEK_HOLE split the file into data
 * and holes (which read as zeroes); without that support all is data.
 */
int
backing_raw_extents (const struct backing *b, uint64_t offset,
                     uint64_t length, qcow2_extent_fn fn, void *opaque)
{
  const uint64_t end = offset + length;

  while (offset < end) {
    bool hole;
    uint64_t len;

    if (io_extent (b->raw, offset, end - offset, &hole, &len) == -1)
      return -1;
    if (len == 0)                               /* cannot happen; be safe */
      len = end - offset;
    if (fn (opaque, offset, len,
            hole ? QCOW2_EXTENT_HOLE | QCOW2_EXTENT_ZERO : 0) == -1)
      return -1;
    offset += len;
  }
  return 0;
}
