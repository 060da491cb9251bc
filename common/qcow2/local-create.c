/* qcow2_create: a new image in local files (see qcow2.h).  The engine
 * writes it (qcow2_create_on); this opens the files: the new image and
 * data file, which are never overwritten, and the backing file, whose
 * size the engine may need.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "local-files.h"
#include "qcow2.h"

/* Create path, which must not exist yet. */
static struct io *
create_file (const char *path, const char *what)
{
  int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  struct io *io;

  if (fd == -1) {
    int e = errno;

    if (e == EEXIST && what)
      diag_error ("create: %s %s already exists; it is not overwritten "
                  "(remove it first)", what, path);
    else if (what)
      diag_error ("create: could not create %s %s: %m", what, path);
    else
      diag_error ("create: %s: %m", path);
    errno = e;
    return NULL;
  }
  io = io_fd_wrap (fd, path, false);
  if (io == NULL) {
    close (fd);
    unlink (path);
  }
  return io;
}

/* The backing file, as QEMU opens it to check it: its name is relative
 * to the directory of the new image.
 */
static struct io *
open_backing (const struct qcow2_create_options *o)
{
  CLEANUP_FREE char *dir = named_file_dir (o->filename);
  CLEANUP_FREE char *path = dir ? resolve_name (dir, o->backing_file) : NULL;
  const char *type;
  struct io *io;
  int fd;

  if (path == NULL)
    return NULL;
  fd = local_open_fd (path, &type);
  if (fd == -1) {
    int e = errno;

    if (type)
      diag_error ("create: backing file '%s' is %s; only a regular file or "
                  "a block device can be one", o->backing_file, type);
    else
      diag_error ("create: could not open backing file '%s': %m",
                  o->backing_file);
    errno = e;
    return NULL;
  }
  io = io_fd_wrap (fd, path, true);
  if (io == NULL)
    close (fd);
  return io;
}

/* Make the new directory entries durable too. */
static int
sync_directory (const char *filename)
{
  CLEANUP_FREE char *dir = named_file_dir (filename);
  int fd, r;

  if (dir == NULL)
    return -1;
  fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1)
    return 0;                   /* nothing we can do; not fatal */
  r = fsync (fd);
  close (fd);
  if (r == -1 && errno != EINVAL) {
    diag_error ("create: fsync of the directory of %s: %m", filename);
    return -1;
  }
  return 0;
}

int
qcow2_create (const struct qcow2_create_options *o)
{
  struct qcow2_create_files f = { NULL };
  int r = -1, e;

  if (qcow2_create_check (o) == -1 ||
      (o->backing_file && (f.backing = open_backing (o)) == NULL) ||
      (f.image = create_file (o->filename, NULL)) == NULL ||
      (o->data_file &&
       (f.data = create_file (o->data_file, "data file")) == NULL))
    goto out;
  if (qcow2_create_on (o, &f) == 0 &&
      sync_directory (o->filename) == 0 &&
      (o->data_file == NULL || sync_directory (o->data_file) == 0))
    r = 0;

 out:
  e = errno;
  if (f.image) {
    io_close (f.image);
    if (r == -1)
      unlink (o->filename);
  }
  if (f.data) {
    io_close (f.data);
    if (r == -1)
      unlink (o->data_file);
  }
  io_close (f.backing);
  errno = e;
  return r;
}
