/* A struct io over nbdkit's next layer, for filters: an engine in
 * common/ reads and writes the layer below through it (the luks filter
 * its header and key areas while unlocking, the qcow2 filter the
 * whole image).
 *
 * Glue, not engine: it is built into the filters that use it
 * (libio-next.la, compiled with nbdkit's flags), and io.h, which the
 * engines include, stays free of nbdkit types.
 *
 * The size of the layer below is fixed (nbdkit cannot resize it):
 * io_truncate fails with ENOTSUP and io.fixed_size is set, so an
 * engine allocates inside the layer.
 */
#ifndef IO_NEXT_H
#define IO_NEXT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "io.h"

/* One way into the layer below: a context, and where the plugin below
 * must see one request at a time on it, the lock that ensures that.
 */
struct io_next_lane {
  nbdkit_next *next;
  bool serialize;
  pthread_mutex_t lock;         /* initialized only where serialize */
  unsigned busy;                /* calls in flight: where the next goes */
};

/* Most lanes of a shared io: enough to keep a layer far away busy
 * (qemu's curl driver keeps 8 requests in flight, its nbd driver 16 on
 * one connection), few enough not to flood it with connections.
 */
#define IO_NEXT_MAX_LANES 8

struct io_next_lanes {
  unsigned nr;
  struct io_next_lane lane[IO_NEXT_MAX_LANES];
};

struct io_next {
  struct io io;
  /* Where calls go now: each takes the lane with the fewest in flight
   * (the shared io switches the set once, from the read-only to the
   * writable contexts, while calls are running).
   */
  struct io_next_lanes *lanes;
  struct io_next_lanes own;     /* io_next_init's single lane */
  int64_t size;                 /* of the layer below, asked once */
};

/* An io over the context of one connection; valid while next is.
 * Asks the layer's size (reporting a failure) and returns 0, or -1.
 */
extern int io_next_init (struct io_next *n, nbdkit_next *next,
                         const char *name);

/* An io over contexts of its own into the layer below, shared by every
 * connection (nbdkit_next_context_open with shared set), for a filter
 * that serves one image to all of them.
 *
 * It opens several contexts (lanes), so that independent requests go
 * down in parallel even where one context cannot carry them (a plugin
 * that serializes requests, or the nbd plugin, whose one connection
 * sends no request while a long reply streams in).  thread_model (the
 * server's) says how many: with NBDKIT_THREAD_MODEL_PARALLEL, 4 lanes
 * taking any number of calls at once; SERIALIZE_REQUESTS,
 * IO_NEXT_MAX_LANES lanes of one call at a time each; stricter models,
 * one lane of one call at a time.  More than one only where the layer
 * advertises multi-conn (a server without it may accept one client
 * only) or, for reading, its plugin serializes requests (and so expects
 * several contexts).  A layer that refuses the extra contexts is used
 * through those it gave.
 *
 * Opened read-only; io_make_writable opens writable contexts (EROFS
 * where the layer below cannot be written), more than one only with
 * multi-conn (a flush on one then makes the writes completed on all
 * durable).
 * io_close finalizes and closes them all.  Returns NULL after reporting
 * the cause.
 */
extern struct io *io_next_open_shared (nbdkit_backend *backend,
                                       const char *exportname,
                                       const char *name, int thread_model);

#endif /* IO_NEXT_H */
