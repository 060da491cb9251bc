/* Guest writes.  Placeholder until the write path lands: the image is
 * served read-only.
 */
#include <config.h>

#include <errno.h>

#include "diag.h"
#include "internal.h"
#include "io.h"

static int
not_yet (struct qcow2_image *img)
{
  diag_error ("%s: writing qcow2 images is not supported yet", img->filename);
  errno = EROFS;
  return -1;
}

int
qcow2_pwrite (struct qcow2_image *img, const void *buf, uint64_t count,
              uint64_t offset, unsigned flags)
{
  return not_yet (img);
}

int
qcow2_zero (struct qcow2_image *img, uint64_t count, uint64_t offset,
            unsigned flags)
{
  return not_yet (img);
}

int
qcow2_trim (struct qcow2_image *img, uint64_t count, uint64_t offset,
            unsigned flags)
{
  return not_yet (img);
}

int
qcow2_flush (struct qcow2_image *img)
{
  return img->readonly ? 0 : io_flush (img->file);
}
