/* struct io over nbdkit_next (see io-next.h).
 *
 * nbdkit asserts that every request a filter sends down is inside the
 * export, so the range is checked here first: a hostile header pointing
 * past the end gets a clear error instead of an aborted server.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>

#include "checked-overflow.h"
#include "diag.h"
#include "io-next.h"
#include "minmax.h"

/* Largest single request sent down. */
#define MAX_REQUEST (32 * 1024 * 1024)

static int64_t
next_size (struct io *io)
{
  struct io_next *n = (struct io_next *) io;
  int64_t size = n->next->get_size (n->next);

  if (size == -1) {
    diag_error ("%s: cannot get the size of the layer below", io->name);
    errno = EIO;
  }
  return size;
}

static int
check_range (struct io *io, size_t count, uint64_t offset)
{
  int64_t size = next_size (io);

  if (size == -1)
    return -1;
  if (!range_within (offset, count, size)) {
    diag_error ("%s: %zu bytes at offset %" PRIu64 " lie beyond the end "
                "(%" PRIi64 " bytes)", io->name, count, offset, size);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Send one range down in requests nbdkit accepts (at most
 * MAX_REQUEST bytes each).
 */
static int
next_transfer (struct io *io, char *p, size_t count, uint64_t offset,
               bool write)
{
  struct io_next *n = (struct io_next *) io;
  int err = 0;

  if (check_range (io, count, offset) == -1)
    return -1;
  while (count > 0) {
    uint32_t len = MIN (count, (size_t) MAX_REQUEST);
    int r = write ? n->next->pwrite (n->next, p, len, offset, 0, &err)
      : n->next->pread (n->next, p, len, offset, 0, &err);

    if (r == -1) {
      errno = err ? err : EIO;
      diag_error ("%s: %s at offset %" PRIu64 ": %m", io->name,
                  write ? "write" : "read", offset);
      return -1;
    }
    p += len;
    offset += len;
    count -= len;
  }
  return 0;
}

static int
next_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  return next_transfer (io, buf, count, offset, false);
}

static int
next_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return next_transfer (io, (char *) buf, count, offset, true);
}

static int
next_flush (struct io *io)
{
  struct io_next *n = (struct io_next *) io;
  int err = 0;

  if (n->next->flush (n->next, 0, &err) == -1) {
    errno = err ? err : EIO;
    diag_error ("%s: flush: %m", io->name);
    return -1;
  }
  return 0;
}

static int
next_truncate (struct io *io, uint64_t size)
{
  diag_error ("%s: the layer below cannot be resized", io->name);
  errno = ENOTSUP;
  return -1;
}

static void
next_close (struct io *io)
{
  /* Nothing owned. */
}

static const struct io_ops next_ops = {
  .pread = next_pread,
  .pwrite = next_pwrite,
  .flush = next_flush,
  .size = next_size,
  .truncate = next_truncate,
  .close = next_close,
};

void
io_next_init (struct io_next *n, nbdkit_next *next, const char *name)
{
  n->io.ops = &next_ops;
  n->io.name = name;
  n->io.readonly = false;
  n->next = next;
}
