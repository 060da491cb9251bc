/* struct io over nbdkit_next (see io-next.h).
 *
 * nbdkit asserts that every request a filter sends down is inside the
 * export, so the range is checked here first: a hostile header pointing
 * past the end gets a clear error instead of an aborted server.  It
 * also asserts that a context was asked what it can do (can_write,
 * can_zero, can_flush) before it is asked to do it: the shared io asks
 * once, when it opens a context.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checked-overflow.h"
#include "diag.h"
#include "io-next.h"
#include "minmax.h"

/* Largest single read or write sent down, and largest zero. */
#define MAX_REQUEST (32 * 1024 * 1024)
#define MAX_ZERO (1024 * 1024 * 1024)

/* The context calls go to now (the shared io switches it once, from
 * the read-only to the writable context, while calls are running).
 */
static nbdkit_next *
current (struct io_next *n)
{
  return __atomic_load_n (&n->next, __ATOMIC_ACQUIRE);
}

static void
lock (struct io_next *n)
{
  if (n->lock)
    pthread_mutex_lock (n->lock);
}

static void
unlock (struct io_next *n)
{
  if (n->lock)
    pthread_mutex_unlock (n->lock);
}

/* The size of the layer below, asked once: nbdkit cannot change it
 * while the layer is open.
 */
static int
ask_size (struct io_next *n, nbdkit_next *next)
{
  lock (n);
  n->size = next->get_size (next);
  unlock (n);
  if (n->size == -1) {
    diag_error ("%s: cannot get the size of the layer below", n->io.name);
    errno = EIO;
    return -1;
  }
  return 0;
}

static int64_t
next_size (struct io *io)
{
  return ((struct io_next *) io)->size;
}

static int
check_range (struct io *io, uint64_t count, uint64_t offset)
{
  int64_t size = next_size (io);

  if (!range_within (offset, count, size)) {
    diag_error ("%s: %" PRIu64 " bytes at offset %" PRIu64 " lie beyond "
                "the end (%" PRIi64 " bytes)", io->name, count, offset, size);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Writing to a read-only context would trip nbdkit's assertions. */
static int
check_writable (struct io *io)
{
  if (!io->readonly)
    return 0;
  diag_error ("%s: the layer below is open read-only", io->name);
  errno = EROFS;
  return -1;
}

enum request { READ, WRITE, ZERO };

static const char *
request_name (enum request what)
{
  return what == READ ? "read" : what == WRITE ? "write" : "zero";
}

static int
send_one (nbdkit_next *next, enum request what, char *p, uint32_t len,
          uint64_t offset, uint32_t flags, int *err)
{
  switch (what) {
  case READ: return next->pread (next, p, len, offset, 0, err);
  case WRITE: return next->pwrite (next, p, len, offset, 0, err);
  case ZERO: return next->zero (next, len, offset, flags, err);
  }
  *err = EINVAL;
  return -1;
}

/* Send one range down in requests nbdkit accepts.  p is NULL for
 * ZERO.  Failures are reported unless quiet (a punch may fail).
 */
static int
next_transfer (struct io *io, enum request what, char *p, uint64_t count,
               uint64_t offset, uint32_t flags, bool quiet)
{
  struct io_next *n = (struct io_next *) io;
  const uint64_t max = what == ZERO ? MAX_ZERO : MAX_REQUEST;

  if ((what != READ && check_writable (io) == -1) ||
      check_range (io, count, offset) == -1)
    return -1;
  while (count > 0) {
    uint32_t len = MIN (count, max);
    nbdkit_next *next = current (n);
    int err = 0, r;

    lock (n);
    r = send_one (next, what, p, len, offset, flags, &err);
    unlock (n);
    if (r == -1) {
      errno = err ? err : EIO;
      if (!quiet)
        diag_error ("%s: %s at offset %" PRIu64 ": %m", io->name,
                    request_name (what), offset);
      return -1;
    }
    if (p)
      p += len;
    offset += len;
    count -= len;
  }
  return 0;
}

static int
next_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  return next_transfer (io, READ, buf, count, offset, 0, false);
}

static int
next_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return next_transfer (io, WRITE, (char *) buf, count, offset, 0, false);
}

static int
next_flush (struct io *io)
{
  struct io_next *n = (struct io_next *) io;
  nbdkit_next *next = current (n);
  int err = 0, r;

  lock (n);
  r = next->flush (next, 0, &err);
  unlock (n);
  if (r == -1) {
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

int
io_next_init (struct io_next *n, nbdkit_next *next, const char *name)
{
  n->io.ops = &next_ops;
  n->io.name = name;
  n->io.readonly = false;
  n->io.fixed_size = true;
  n->next = next;
  n->lock = NULL;
  return ask_size (n, next);
}

/* ---------------------------------------------------------------- */
/* The shared io: contexts of its own. */

struct io_next_shared {
  struct io_next n;
  nbdkit_backend *backend;
  char *exportname;
  char *name;
  nbdkit_next *ro, *rw;
  pthread_mutex_t lock;
  /* What the writable context can do (asked when it is opened). */
  bool can_flush;
  bool can_zero;                /* natively: else io_zero writes zeroes */
  bool can_fast_zero;
};

/* Open and prepare a context into the layer below. */
static nbdkit_next *
context_open (struct io_next_shared *s, bool readonly)
{
  nbdkit_next *next = nbdkit_next_context_open (s->backend, readonly,
                                                s->exportname, true);

  if (next == NULL)
    return NULL;
  if (next->prepare (next) == -1) {
    nbdkit_next_context_close (next);
    return NULL;
  }
  /* nbdkit's precondition for any read. */
  if (next->get_size (next) == -1) {
    next->finalize (next);
    nbdkit_next_context_close (next);
    return NULL;
  }
  return next;
}

static void
context_close (nbdkit_next *next)
{
  if (next) {
    next->finalize (next);
    nbdkit_next_context_close (next);
  }
}

static int
shared_flush (struct io *io)
{
  struct io_next_shared *s = (struct io_next_shared *) io;

  /* A read-only context has nothing to flush; a layer that cannot
   * flush has nothing to make durable (nbdkit's rule for can_flush).
   */
  if (io->readonly || !s->can_flush)
    return 0;
  return next_flush (io);
}

static int
shared_zero (struct io *io, uint64_t offset, uint64_t count)
{
  struct io_next_shared *s = (struct io_next_shared *) io;

  if (!s->can_zero) {
    errno = ENOTSUP;
    return -1;
  }
  return next_transfer (io, ZERO, NULL, count, offset, 0, false);
}

/* Freed clusters: zeroes that may give the space back, only where that
 * is cheap (a fast zero), and never reported: the space then just
 * stays allocated.
 */
static int
shared_punch (struct io *io, uint64_t offset, uint64_t count)
{
  struct io_next_shared *s = (struct io_next_shared *) io;

  if (!s->can_zero || !s->can_fast_zero)
    return 0;
  next_transfer (io, ZERO, NULL, count, offset,
                 NBDKIT_FLAG_MAY_TRIM | NBDKIT_FLAG_FAST_ZERO, true);
  return 0;
}

static int
shared_make_writable (struct io *io)
{
  struct io_next_shared *s = (struct io_next_shared *) io;
  nbdkit_next *rw;
  int r;

  if (s->rw)
    return 0;
  rw = context_open (s, false);
  if (rw == NULL) {
    nbdkit_debug ("%s: the layer below cannot be opened for writing",
                  io->name);
    errno = EROFS;
    return -1;
  }
  lock (&s->n);
  r = rw->can_write (rw);
  if (r == 1) {
    s->can_flush = rw->can_flush (rw) == 1;
    s->can_zero = rw->can_zero (rw) == NBDKIT_ZERO_NATIVE;
    s->can_fast_zero = s->can_zero && rw->can_fast_zero (rw) == 1;
  }
  unlock (&s->n);
  if (r != 1) {
    nbdkit_debug ("%s: the layer below is read-only", io->name);
    context_close (rw);
    errno = EROFS;
    return -1;
  }
  s->rw = rw;
  __atomic_store_n (&s->n.next, rw, __ATOMIC_RELEASE);
  io->readonly = false;
  return 0;
}

static void
shared_close (struct io *io)
{
  struct io_next_shared *s = (struct io_next_shared *) io;

  context_close (s->rw);
  context_close (s->ro);
  pthread_mutex_destroy (&s->lock);
  free (s->exportname);
  free (s->name);
  free (s);
}

static const struct io_ops shared_ops = {
  .pread = next_pread,
  .pwrite = next_pwrite,
  .flush = shared_flush,
  .size = next_size,
  .truncate = next_truncate,
  .zero = shared_zero,
  .punch = shared_punch,
  .close = shared_close,
  .make_writable = shared_make_writable,
};

struct io *
io_next_open_shared (nbdkit_backend *backend, const char *exportname,
                     const char *name, bool serialize)
{
  struct io_next_shared *s = calloc (1, sizeof *s);

  if (s == NULL) {
    diag_error ("calloc: %m");
    return NULL;
  }
  pthread_mutex_init (&s->lock, NULL);
  s->backend = backend;
  s->exportname = strdup (exportname);
  s->name = strdup (name);
  if (s->exportname == NULL || s->name == NULL) {
    diag_error ("strdup: %m");
    goto fail;
  }
  s->ro = context_open (s, true);
  if (s->ro == NULL) {
    diag_error ("%s: cannot open the layer below", name);
    goto fail;
  }
  if (io_next_init (&s->n, s->ro, s->name) == -1)
    goto fail;
  s->n.io.ops = &shared_ops;
  s->n.io.readonly = true;
  if (serialize)
    s->n.lock = &s->lock;
  return &s->n.io;

 fail:
  shared_close (&s->n.io);
  errno = EIO;
  return NULL;
}
