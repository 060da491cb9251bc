/* The image and the files it names: its backing file ("Header",
 * backing_file_offset in qcow2.txt) and its external data file
 * ("External data file name" header extension).  qcow2 can name no
 * other file: bitmaps, the LUKS header and snapshots live inside the
 * image.
 *
 * The names come from an image that may be hostile.  What the
 * operator's options let an image open (backing=none: no file at all
 * unless the operator names it) is decided here and nowhere else; what
 * may stand behind a name is the opener's rule (qcow2.h), and the
 * engine opens files only through it.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
                   const struct qcow2_options *opts,
                   enum qcow2_file_role role)
{
  if (opts->backing == QCOW2_BACKING_AUTO || role == QCOW2_FILE_IMAGE ||
      (opts->backing == QCOW2_BACKING_SKIP && role == QCOW2_FILE_DATA))
    return FILE_OPEN;
  if (role == QCOW2_FILE_BACKING) {
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

struct io *
named_file_open (const struct qcow2_image *img,
                 const struct qcow2_options *opts, enum qcow2_file_role role,
                 const char *name, const char *recorded, bool probe)
{
  struct qcow2_file_request req = {
    .role = role,
    .name = name,
    .recorded = recorded,
    .named_by = role == QCOW2_FILE_IMAGE ? NULL : img->filename,
    .probe = probe,
    .for_writing = role == QCOW2_FILE_BACKING && opts->writable_backing,
  };

  if (opts->opener == NULL) {
    diag_error ("%s: no way to open files was given", name);
    errno = EINVAL;
    return NULL;
  }
  return opts->opener->open (opts->opener->opaque, &req);
}
