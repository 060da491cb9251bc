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
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"

/* Found from QEMU's working directory first, then the image's.
 * recorded: name, if the image names it, or NULL (the operator's).
 */
static struct io *
find_data_file (struct qcow2_image *img, const struct qcow2_options *opts,
                const char *name, const char *recorded)
{
  CLEANUP_FREE char *dir = NULL;
  CLEANUP_FREE char *path = NULL;
  struct io *io;

  if (name[0] == '/')
    return named_file_open (img, opts, QCOW2_FILE_DATA, name, recorded,
                            false);
  io = named_file_open (img, opts, QCOW2_FILE_DATA, name, recorded, true);
  if (io || errno != ENOENT)
    return io;
  dir = image_dir (img);
  if (dir == NULL || (path = resolve_name (dir, name)) == NULL)
    return NULL;
  io = named_file_open (img, opts, QCOW2_FILE_DATA, path, recorded, true);
  if (io || errno != ENOENT)
    return io;
  /* In neither: the error names it as given. */
  return named_file_open (img, opts, QCOW2_FILE_DATA, name, recorded,
                          false);
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
  if (named_file_policy (img, opts, QCOW2_FILE_DATA) != FILE_OPEN)
    return -1;
  img->data = find_data_file (img, opts, name,
                              opts->data_file ? NULL : h->data_file);
  if (img->data == NULL) {
    img->data = img->file;
    return -1;
  }
  size = io_size (img->data);
  if (size == -1)
    return -1;
  img->data_size = size;
  diag_debug ("%s: external data file %s (%s, %" PRIi64 " bytes)",
              img->filename, img->data->name,
              h->autoclear & AUTOCLEAR_DATA_FILE_RAW ? "raw" : "not raw", size);
  return 0;
}
