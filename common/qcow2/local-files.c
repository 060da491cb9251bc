/* The engine's files on the local file system (qcow2_local_files, see
 * qcow2.h): the image, and the backing and data files it names, by
 * path.
 *
 * Those names come from an image that may be hostile, so only a
 * regular file or a block device is opened, and never in a way that
 * blocks or acts: open(2) of a FIFO waits for a writer, a character
 * device may act on open.  The type is checked by stat before the open
 * and again by fstat on what was opened.
 *
 * The image and its data file are opened again for writing later
 * (io_make_writable), after nbdkit may have changed directory: their
 * io keeps the absolute path.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

#include "diag.h"
#include "io.h"
#include "local-files.h"
#include "qcow2.h"

/* Nothing but these can hold an image or its data. */
static const char *
wrong_type (mode_t mode)
{
  if (S_ISREG (mode) || S_ISBLK (mode))
    return NULL;
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISFIFO (mode))
    return "a FIFO";
  if (S_ISSOCK (mode))
    return "a socket";
  if (S_ISCHR (mode))
    return "a character device";
  return "not a regular file";
}

int
local_open_fd (const char *path, const char **type)
{
  struct stat st;
  int fd, flags;

  *type = NULL;
  if (stat (path, &st) == -1)
    return -1;
  if ((*type = wrong_type (st.st_mode)) != NULL)
    goto wrong;
  fd = open (path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd == -1)
    return -1;
  /* The path may have been replaced between stat and open. */
  if (fstat (fd, &st) == -1)
    goto fail;
  if ((*type = wrong_type (st.st_mode)) != NULL) {
    close (fd);
    goto wrong;
  }
  flags = fcntl (fd, F_GETFL);
  if (flags == -1 || fcntl (fd, F_SETFL, flags & ~O_NONBLOCK) == -1)
    goto fail;
  return fd;

 fail:
  {
    int e = errno;
    close (fd);
    errno = e;
  }
  return -1;
 wrong:
  errno = S_ISDIR (st.st_mode) ? EISDIR : EINVAL;
  return -1;
}

static const char *
role_noun (enum qcow2_file_role role)
{
  switch (role) {
  case QCOW2_FILE_IMAGE: return "image";
  case QCOW2_FILE_BACKING: return "backing file";
  case QCOW2_FILE_DATA: return "external data file";
  }
  return "file";
}

/* Report the cause, naming the image that asked for the file. */
static void
report (const struct qcow2_file_request *req, const char *type)
{
  int e = errno;

  if (type && req->role == QCOW2_FILE_IMAGE && e == EISDIR)
    diag_error ("open: %s: %m", req->name);
  else if (type && req->role == QCOW2_FILE_IMAGE)
    diag_error ("open: %s: is %s; only a regular file or a block device "
                "can be an image", req->name, type);
  else if (type)
    diag_error ("%s: %s %s is %s; only a regular file or a block device "
                "can be one", req->named_by, role_noun (req->role),
                req->name, type);
  else if (req->role == QCOW2_FILE_IMAGE)
    diag_error ("open: %s: %m", req->name);
  else if (req->role == QCOW2_FILE_BACKING)
    diag_error ("%s: backing file %s: %m", req->named_by, req->name);
  else
    diag_error ("%s: cannot open external data file %s: %m",
                req->named_by, req->name);
  errno = e;
}

static struct io *
local_open (void *opaque, const struct qcow2_file_request *req)
{
  const char *type;
  char *path = NULL;
  struct io *io;
  int fd;

  (void) opaque;
  fd = local_open_fd (req->name, &type);
  if (fd == -1) {
    if (!(req->probe && errno == ENOENT))
      report (req, type);
    return NULL;
  }
  /* Backing files are never written, but by a commit. */
  if ((req->role != QCOW2_FILE_BACKING || req->for_writing) &&
      (path = realpath (req->name, NULL)) == NULL) {
    report (req, NULL);
    close (fd);
    return NULL;
  }
  io = io_fd_wrap_path (fd, req->name, path, true);
  if (io == NULL)
    close (fd);
  free (path);
  return io;
}

const struct qcow2_opener qcow2_local_files = { .open = local_open };
