/* Opening the image and the files it names: its backing file ("Header",
 * backing_file_offset in qcow2.txt) and its external data file
 * ("External data file name" header extension).  qcow2 can name no
 * other file: bitmaps, the LUKS header and snapshots live inside the
 * image.
 *
 * The names come from an image that may be hostile, so two rules are
 * kept here and nowhere else:
 *
 *  - what the operator's options let an image open (backing=none: no
 *    file at all unless the operator names it);
 *  - only a regular file or a block device is opened, and without ever
 *    blocking: open(2) of a FIFO waits for a writer, a character
 *    device may act on open.  The type is checked by stat before the
 *    open and again by fstat on what was opened.
 *
 * Files are opened read-only unless writing is asked for; a file that
 * refuses to be opened for writing is opened read-only instead.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "diag.h"
#include "internal.h"
#include "io.h"

char *
named_file_dir (const char *path)
{
  const char *slash = strrchr (path, '/');
  char *dir;

  if (slash == NULL)
    dir = strdup (".");
  else if (slash == path)
    dir = strdup ("/");
  else
    dir = strndup (path, slash - path);
  if (dir == NULL)
    diag_error ("strdup: %m");
  return dir;
}

enum file_policy
named_file_policy (const struct qcow2_image *img,
                   const struct qcow2_options *opts, enum file_role role)
{
  if (opts->backing != QCOW2_BACKING_NONE || role == FILE_IMAGE)
    return FILE_OPEN;
  if (role == FILE_BACKING) {
    diag_debug ("%s: not opening backing file %s (backing=none)",
                img->filename, img->hdr.backing_file);
    return FILE_SKIP;
  }
  if (opts->data_file)          /* named by the operator */
    return FILE_OPEN;
  diag_error ("%s: the image names %s as its external data file (header "
              "extension \"External data file name\"); with backing=none no "
              "file the image names is opened: give data-file=PATH to use "
              "one", img->filename, img->hdr.data_file);
  errno = EPERM;
  return FILE_REFUSE;
}

static const char *
role_noun (enum file_role role)
{
  switch (role) {
  case FILE_IMAGE: return "image";
  case FILE_BACKING: return "backing file";
  case FILE_DATA: return "external data file";
  }
  return "file";
}

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

/* Report the cause, naming the image that asked for the file. */
static void
report (const struct qcow2_image *img, enum file_role role,
        const char *path, const char *type)
{
  int e = errno;

  if (type && role == FILE_IMAGE && e == EISDIR)
    diag_error ("open: %s: %m", path);
  else if (type && role == FILE_IMAGE)
    diag_error ("open: %s: is %s; only a regular file or a block device "
                "can be an image", path, type);
  else if (type)
    diag_error ("%s: %s %s is %s; only a regular file or a block device "
                "can be one", img->filename, role_noun (role), path, type);
  else if (role == FILE_IMAGE)
    diag_error ("open: %s: %m", path);
  else if (role == FILE_BACKING)
    diag_error ("%s: backing file %s: %m", img->filename, path);
  else
    diag_error ("%s: cannot open external data file %s: %m",
                img->filename, path);
  errno = e;
}

int
named_file_open_fd (const char *path, int access, const char **type)
{
  struct stat st;
  int fd, flags;

  *type = NULL;
  if (stat (path, &st) == -1)
    return -1;
  if ((*type = wrong_type (st.st_mode)) != NULL)
    goto wrong;
  fd = open (path, access | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
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

struct io *
named_file_open (const struct qcow2_image *img, enum file_role role,
                 const char *path, bool writable, char **abs_path)
{
  const char *type;
  struct io *io;
  int fd = -1;

  if (writable) {
    fd = named_file_open_fd (path, O_RDWR, &type);
    if (fd == -1 && errno != EACCES && errno != EROFS && errno != EPERM) {
      report (img, role, path, type);
      return NULL;
    }
  }
  if (fd == -1) {
    writable = false;
    fd = named_file_open_fd (path, O_RDONLY, &type);
    if (fd == -1) {
      report (img, role, path, type);
      return NULL;
    }
  }
  /* Opened again later for writing: nbdkit leaves the directory it
   * was started in when it forks into the background.
   */
  if (abs_path && (*abs_path = realpath (path, NULL)) == NULL) {
    report (img, role, path, NULL);
    close (fd);
    return NULL;
  }
  io = io_fd_wrap (fd, path, !writable);
  if (io == NULL) {
    close (fd);
    if (abs_path) {
      free (*abs_path);
      *abs_path = NULL;
    }
  }
  return io;
}

int
named_file_reopen_writable (const struct qcow2_image *img,
                            enum file_role role, const char *abs_path,
                            struct io *io)
{
  struct io *rw;

  if (!io->readonly)
    return 0;
  rw = named_file_open (img, role, abs_path, true, NULL);
  if (rw == NULL)
    return -1;
  if (rw->readonly) {
    io_close (rw);
    errno = EROFS;
    return -1;
  }
  return io_take_over (io, rw);
}
