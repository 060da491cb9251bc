/* Sticky write errors: which failures latch, and what later requests
 * get (the rule is at struct write_state's error, write-state.h).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "write-state.h"

static bool
no_room (int e)
{
  return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

/* Called with the metadata lock held exclusively. */
int
write_failed (struct qcow2_image *img)
{
  int e = errno;
  struct write_state *w = img->w;

  if (w->error == 0) {
    /* The cause was reported where it happened.  A lack of room keeps
     * its errno, which tells the operator what to do; anything else is
     * an I/O error to the client.
     */
    w->error = no_room (e) ? e : EIO;
    diag_debug ("%s: the image takes no more writes and every flush "
                "fails from now on", img->filename);
  }
  errno = e;
  return -1;
}

int
write_failed_no_room (struct qcow2_image *img)
{
  if (no_room (errno))
    return -1;
  return write_failed (img);
}

int
data_write_failed (struct qcow2_image *img)
{
  int e = errno;

  if (!no_room (e)) {
    SCOPED_WRLOCK (&img->meta_lock);
    write_failed (img);
  }
  errno = e;
  return -1;
}

int
write_error_check (struct qcow2_image *img)
{
  struct write_state *w = img->w;

  if (w->error == 0)
    return 0;
  if (w->corrupt)
    diag_error ("%s: the image was found corrupt: writes and flushes fail",
                img->filename);
  else
    diag_error ("%s: an earlier failure (%s) may have lost written "
                "data: writes and flushes fail", img->filename,
                strerror (w->error));
  errno = w->error;
  return -1;
}
