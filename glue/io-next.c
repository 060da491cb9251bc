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

/* The lane for one call: of the set calls go to now, the one with the
 * fewest calls in flight (a race between two callers only makes the
 * choice less even).  Held until lane_give.
 */
static struct io_next_lane *
lane_take (struct io_next *n)
{
  struct io_next_lanes *set = __atomic_load_n (&n->lanes, __ATOMIC_ACQUIRE);
  struct io_next_lane *best = &set->lane[0];
  unsigned least = __atomic_load_n (&best->busy, __ATOMIC_RELAXED);

  for (unsigned i = 1; i < set->nr && least > 0; i++) {
    unsigned busy = __atomic_load_n (&set->lane[i].busy, __ATOMIC_RELAXED);

    if (busy < least) {
      best = &set->lane[i];
      least = busy;
    }
  }
  __atomic_add_fetch (&best->busy, 1, __ATOMIC_RELAXED);
  if (best->serialize)
    pthread_mutex_lock (&best->lock);
  return best;
}

static void
lane_give (struct io_next_lane *l)
{
  if (l->serialize)
    pthread_mutex_unlock (&l->lock);
  __atomic_sub_fetch (&l->busy, 1, __ATOMIC_RELAXED);
}

/* The size of the layer below, asked once: nbdkit cannot change it
 * while the layer is open.
 */
static int
ask_size (struct io_next *n)
{
  struct io_next_lane *l = lane_take (n);

  n->size = l->next->get_size (l->next);
  lane_give (l);
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
    struct io_next_lane *l = lane_take (n);
    int err = 0, r;

    r = send_one (l->next, what, p, len, offset, flags, &err);
    lane_give (l);
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
  struct io_next_lane *l = lane_take ((struct io_next *) io);
  int err = 0, r;

  /* One lane is enough: there are several only where a flush on one
   * covers the writes of all (can_multi_conn).
   */
  r = l->next->flush (l->next, 0, &err);
  lane_give (l);
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
  memset (&n->own, 0, sizeof n->own);
  n->own.nr = 1;
  n->own.lane[0].next = next;
  n->lanes = &n->own;
  return ask_size (n);
}

/* ---------------------------------------------------------------- */
/* The shared io: contexts of its own. */

struct io_next_shared {
  struct io_next n;
  nbdkit_backend *backend;
  char *exportname;
  char *name;
  int thread_model;             /* the server's */
  struct io_next_lanes ro, rw;
  /* What the writable contexts can do (asked when they are opened). */
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
  next->finalize (next);
  nbdkit_next_context_close (next);
}

/* How many lanes to open, once the first is (see io-next.h): where
 * the layer says it is meant for several connections (multi-conn; a
 * server without it may take one client only, and hang the next), or,
 * for reading, where its plugin serializes requests and so expects
 * several contexts for requests in parallel.
 */
static unsigned
lanes_wanted (int thread_model, bool readonly, nbdkit_next *first)
{
  bool multi_conn = first->can_multi_conn (first) == 1;

  switch (thread_model) {
  case NBDKIT_THREAD_MODEL_PARALLEL:
    return multi_conn ? 4 : 1;
  case NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS:
    return multi_conn || readonly ? IO_NEXT_MAX_LANES : 1;
  default:
    return 1;
  }
}

/* Writable contexts must be asked what they can do before they are
 * asked to do it; the answers of the first stand for all.
 */
static bool
lane_writable (struct io_next_shared *s, nbdkit_next *next, bool first)
{
  if (next->can_write (next) != 1)
    return false;
  if (first) {
    s->can_flush = next->can_flush (next) == 1;
    s->can_zero = next->can_zero (next) == NBDKIT_ZERO_NATIVE;
    s->can_fast_zero = s->can_zero && next->can_fast_zero (next) == 1;
  }
  else {
    next->can_flush (next);
    if (next->can_zero (next) == NBDKIT_ZERO_NATIVE)
      next->can_fast_zero (next);
  }
  return true;
}

/* Open the lanes of a set: one (else -1), then as many more as
 * lanes_wanted says; a layer that refuses more is used through those
 * it gave.
 */
static int
lanes_open (struct io_next_shared *s, struct io_next_lanes *set,
            bool readonly)
{
  const bool serialize = s->thread_model != NBDKIT_THREAD_MODEL_PARALLEL;
  unsigned nr = 1;

  while (set->nr < nr) {
    struct io_next_lane *l = &set->lane[set->nr];
    nbdkit_next *next = context_open (s, readonly);

    if (next && !readonly && !lane_writable (s, next, set->nr == 0)) {
      context_close (next);
      next = NULL;
    }
    if (next == NULL) {
      if (set->nr == 0)
        return -1;
      nbdkit_debug ("%s: the layer below gave %u of %u contexts",
                    s->name, set->nr, nr);
      break;
    }
    l->next = next;
    l->serialize = serialize;
    l->busy = 0;
    if (serialize)
      pthread_mutex_init (&l->lock, NULL);
    if (set->nr++ == 0)
      nr = lanes_wanted (s->thread_model, readonly, next);
  }
  nbdkit_debug ("%s: %s through %u contexts", s->name,
                readonly ? "reading" : "writing", set->nr);
  return 0;
}

static void
lanes_close (struct io_next_lanes *set)
{
  for (unsigned i = 0; i < set->nr; i++) {
    context_close (set->lane[i].next);
    if (set->lane[i].serialize)
      pthread_mutex_destroy (&set->lane[i].lock);
  }
  set->nr = 0;
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

  if (s->rw.nr)
    return 0;
  if (lanes_open (s, &s->rw, false) == -1) {
    nbdkit_debug ("%s: the layer below cannot be opened for writing",
                  io->name);
    errno = EROFS;
    return -1;
  }
  __atomic_store_n (&s->n.lanes, &s->rw, __ATOMIC_RELEASE);
  io->readonly = false;
  return 0;
}

static void
shared_close (struct io *io)
{
  struct io_next_shared *s = (struct io_next_shared *) io;

  lanes_close (&s->rw);
  lanes_close (&s->ro);
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
                     const char *name, int thread_model)
{
  struct io_next_shared *s = calloc (1, sizeof *s);

  if (s == NULL) {
    diag_error ("calloc: %m");
    return NULL;
  }
  s->backend = backend;
  s->thread_model = thread_model;
  s->exportname = strdup (exportname);
  s->name = strdup (name);
  if (s->exportname == NULL || s->name == NULL) {
    diag_error ("strdup: %m");
    goto fail;
  }
  if (lanes_open (s, &s->ro, true) == -1) {
    diag_error ("%s: cannot open the layer below", name);
    goto fail;
  }
  if (io_next_init (&s->n, s->ro.lane[0].next, s->name) == -1)
    goto fail;
  s->n.lanes = &s->ro;
  s->n.io.ops = &shared_ops;
  s->n.io.readonly = true;
  return &s->n.io;

 fail:
  shared_close (&s->n.io);
  errno = EIO;
  return NULL;
}
