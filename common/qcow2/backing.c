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
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "byte-order.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"

#define DEFAULT_MAX_CHAIN_DEPTH 16

char *
image_dir (const struct qcow2_image *img)
{
  const char *slash = strrchr (img->filename, '/');
  char *dir;

  if (slash == NULL)
    dir = strdup (".");
  else if (slash == img->filename)
    dir = strdup ("/");
  else
    dir = strndup (img->filename, slash - img->filename);
  if (dir == NULL)
    diag_error ("strdup: %m");
  return dir;
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
choose_format (struct qcow2_image *img, const char *path,
               enum backing_format *fmt)
{
  const char *name = img->hdr.backing_format;
  unsigned char magic[4] = { 0 };
  int fd;

  if (name) {
    if (strcmp (name, "qcow2") == 0 || strcmp (name, "qcow") == 0)
      *fmt = FMT_QCOW2;
    else if (strcmp (name, "raw") == 0 || strcmp (name, "file") == 0)
      *fmt = FMT_RAW;
    else {
      diag_error ("%s: backing file %s has format '%s', which is not "
                  "supported (only qcow2, qcow and raw)",
                  img->filename, path, name);
      errno = ENOTSUP;
      return -1;
    }
    return 0;
  }

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    diag_error ("%s: cannot open backing file %s: %m", img->filename, path);
    return -1;
  }
  if (pread (fd, magic, sizeof magic, 0) == -1) {
    int e = errno;
    diag_error ("%s: cannot read backing file %s: %m", img->filename, path);
    close (fd);
    errno = e;
    return -1;
  }
  close (fd);
  *fmt = load_be32 (magic) == QCOW2_MAGIC ? FMT_QCOW2 : FMT_RAW;
  diag_debug ("%s: backing file %s has no recorded format; probed as %s",
              img->filename, path, *fmt == FMT_QCOW2 ? "qcow2" : "raw");
  return 0;
}

/* Refuse a chain that is too deep or comes back to a file it holds. */
static int
check_chain (struct qcow2_image *img, const struct qcow2_options *opts,
             const struct chain_link *self, const char *path,
             const struct stat *st)
{
  unsigned max = opts->max_chain_depth ? opts->max_chain_depth
    : DEFAULT_MAX_CHAIN_DEPTH;

  if (self->depth + 1 > max) {
    diag_error ("%s: backing chain is too deep (more than %u backing files)",
                img->filename, max);
    errno = ELOOP;
    return -1;
  }
  for (const struct chain_link *l = self; l; l = l->above) {
    if (l->dev == (uint64_t) st->st_dev && l->ino == (uint64_t) st->st_ino) {
      diag_error ("%s: backing file %s is already part of the backing "
                  "chain (loop)", img->filename, path);
      errno = ELOOP;
      return -1;
    }
  }
  return 0;
}

static int
open_raw (struct qcow2_image *img, const char *path, struct backing *b)
{
  int fd, fd2;
  struct stat st;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    diag_error ("%s: cannot open backing file %s: %m", img->filename, path);
    return -1;
  }
  fd2 = fcntl (fd, F_DUPFD_CLOEXEC, 0);
  if (fd2 == -1 || fstat (fd, &st) == -1) {
    diag_error ("%s: %s: %m", img->filename, path);
    goto fail;
  }
  b->raw = io_fd_wrap (fd2, path, true);
  if (b->raw == NULL)
    goto fail;
  b->raw_fd = fd;
  if (S_ISREG (st.st_mode))
    b->size = st.st_size;
  else {
    int64_t size = io_size (b->raw);
    if (size == -1)
      return -1;                /* backing_close frees the rest */
    b->size = size;
  }
  return 0;

 fail:
  {
    int e = errno;
    if (fd2 >= 0 && b->raw == NULL)
      close (fd2);
    close (fd);
    errno = e;
  }
  return -1;
}

static int
open_image (struct qcow2_image *img, const struct qcow2_options *opts,
            const struct chain_link *self, const char *path,
            struct backing *b)
{
  struct qcow2_options sub = {
    .filename = path,
    .readonly = true,
    .l2_cache_size = opts->l2_cache_size,
    .backing = QCOW2_BACKING_AUTO,
    .max_chain_depth = opts->max_chain_depth,
    .passphrase = opts->passphrase,     /* one passphrase for the chain */
    .kdf_limits = opts->kdf_limits,
  };

  /* The cause was reported where it was found; the top image adds
   * one line to say which chain it belongs to.
   */
  if (image_open (&sub, self, &b->qcow2) == -1) {
    int e = errno;
    if (self->depth == 0)
      diag_error ("%s: cannot open backing file %s", img->filename, path);
    errno = e;
    return -1;
  }
  b->size = qcow2_size (b->qcow2);
  return 0;
}

int
backing_open (struct qcow2_image *img, const struct qcow2_options *opts,
              const struct chain_link *above)
{
  const char *name = img->hdr.backing_file;
  struct chain_link self = { .above = above };
  char *dir = NULL, *path = NULL;
  struct stat st;
  enum backing_format fmt;
  struct backing *b;
  int r = -1;

  if (name == NULL)
    return 0;
  if (opts->backing == QCOW2_BACKING_NONE) {
    diag_debug ("%s: not opening backing file %s (backing=none)",
                img->filename, name);
    return 0;
  }
  if (strncmp (name, "json:", 5) == 0) {
    diag_error ("%s: backing file names in json: syntax are not supported",
                img->filename);
    errno = ENOTSUP;
    return -1;
  }

  self.depth = above ? above->depth + 1 : 0;
  if (stat (img->filename, &st) == -1) {
    diag_error ("stat: %s: %m", img->filename);
    return -1;
  }
  self.dev = st.st_dev;
  self.ino = st.st_ino;

  dir = image_dir (img);
  if (dir == NULL || (path = resolve_name (dir, name)) == NULL)
    goto out;
  if (stat (path, &st) == -1) {
    diag_error ("%s: backing file %s: %m", img->filename, path);
    goto out;
  }
  if (S_ISDIR (st.st_mode)) {
    diag_error ("%s: backing file %s is a directory", img->filename, path);
    errno = EISDIR;
    goto out;
  }
  if (check_chain (img, opts, &self, path, &st) == -1 ||
      choose_format (img, path, &fmt) == -1)
    goto out;

  b = calloc (1, sizeof *b);
  if (b == NULL) {
    diag_error ("calloc: %m");
    goto out;
  }
  b->raw_fd = -1;
  img->backing = b;
  r = fmt == FMT_QCOW2 ? open_image (img, opts, &self, path, b)
    : open_raw (img, path, b);
  if (r == 0)
    diag_debug ("%s: backing file %s (%s, %" PRIu64 " bytes)", img->filename,
                path, fmt == FMT_QCOW2 ? "image" : "raw", b->size);

 out:
  {
    int e = errno;
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
  if (b->raw_fd >= 0)
    close (b->raw_fd);
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
  const uint32_t hole = QCOW2_EXTENT_HOLE | QCOW2_EXTENT_ZERO;

  while (offset < end) {
    off_t data = lseek (b->raw_fd, offset, SEEK_DATA);
    off_t next;

    if (data == -1 && errno == ENXIO)           /* a hole to the end */
      return fn (opaque, offset, end - offset, hole);
    if (data == -1)                             /* no information */
      return fn (opaque, offset, end - offset, 0);
    if ((uint64_t) data > offset) {
      uint64_t len = MIN ((uint64_t) data, end) - offset;
      if (fn (opaque, offset, len, hole) == -1)
        return -1;
      offset += len;
      continue;
    }
    next = lseek (b->raw_fd, offset, SEEK_HOLE);
    if (next == -1 || (uint64_t) next <= offset)
      next = end;
    {
      uint64_t len = MIN ((uint64_t) next, end) - offset;
      if (fn (opaque, offset, len, 0) == -1)
        return -1;
      offset += len;
    }
  }
  return 0;
}
