/* The external data file ("External data file name" header extension,
 * incompatible feature bit 2, autoclear bit 1 "raw external data" in
 * qcow2.txt).
 *
 * With it, every guest cluster lives in a separate file at the host
 * offset its L2 entry gives, and the qcow2 file holds metadata only.
 * QEMU 7.2 opens a relative data file name from its own working
 * directory, not from the image's (unlike backing file names).  We do
 * the same, and when nothing is found there we also try the image's
 * directory, which serves the common case of an image and its data
 * file side by side.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"

/* Open path read-write if the image is, else (or if refused) read-only.
 * Returns the fd, or -1 with errno set and nothing reported.
 */
static int
open_maybe_writable (const char *path, bool *readonly)
{
  int fd = -1;

  if (!*readonly) {
    fd = open (path, O_RDWR | O_CLOEXEC);
    if (fd == -1 && errno != EACCES && errno != EROFS && errno != EPERM)
      return -1;
  }
  if (fd == -1) {
    fd = open (path, O_RDONLY | O_CLOEXEC);
    *readonly = true;
  }
  return fd;
}

static int
open_data_file (struct qcow2_image *img, const char *name)
{
  CLEANUP_FREE char *dir = NULL;
  CLEANUP_FREE char *path = NULL;
  bool readonly = img->readonly;
  int fd, e;

  fd = open_maybe_writable (name, &readonly);
  if (fd == -1 && errno == ENOENT && name[0] != '/') {
    e = errno;
    dir = image_dir (img);
    if (dir == NULL || (path = resolve_name (dir, name)) == NULL)
      return -1;
    readonly = img->readonly;
    fd = open_maybe_writable (path, &readonly);
    if (fd == -1 && errno == ENOENT)
      errno = e;
  }
  if (fd == -1) {
    e = errno;
    diag_error ("%s: cannot open external data file %s: %m",
                img->filename, name);
    errno = e;
    return -1;
  }
  img->data = io_fd_wrap (fd, path ? path : name, readonly);
  if (img->data == NULL) {
    close (fd);
    img->data = img->file;
    return -1;
  }
  /* A metadata update could not be matched by the data: serve both
   * read-only.
   */
  if (readonly)
    img->readonly = true;
  return 0;
}

int
data_file_open (struct qcow2_image *img, const struct qcow2_options *opts)
{
  const struct qcow2_header *h = &img->hdr;
  const char *name;
  int64_t size;

  if (!(h->incompatible & INCOMPAT_DATA_FILE)) {
    if (opts->data_file) {
      diag_error ("%s: data-file was given, but the image does not use an "
                  "external data file", img->filename);
      errno = EINVAL;
      return -1;
    }
    if (h->autoclear & AUTOCLEAR_DATA_FILE_RAW)
      return image_corrupt (img, "the raw external data bit is set, but the "
                            "image has no external data file");
    return 0;
  }

  name = opts->data_file ? opts->data_file : h->data_file;
  if (name == NULL) {
    diag_error ("%s: the image uses an external data file but does not "
                "record its name: give it with data-file=", img->filename);
    errno = EINVAL;
    return -1;
  }
  if (open_data_file (img, name) == -1)
    return -1;
  size = io_size (img->data);
  if (size == -1)
    return -1;
  img->data_size = size;
  diag_debug ("%s: external data file %s (%s, %" PRIi64 " bytes)",
              img->filename, img->data->name,
              h->autoclear & AUTOCLEAR_DATA_FILE_RAW ? "raw" : "not raw", size);
  return 0;
}
