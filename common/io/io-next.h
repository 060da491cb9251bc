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

struct io_next {
  struct io io;
  nbdkit_next *next;
  /* Held around every call into next, where the layer below must not
   * be called from several threads at once; NULL where it may.
   */
  pthread_mutex_t *lock;
  int64_t size;                 /* of the layer below, asked once */
};

/* An io over the context of one connection; valid while next is.
 * Asks the layer's size (reporting a failure) and returns 0, or -1.
 */
extern int io_next_init (struct io_next *n, nbdkit_next *next,
                         const char *name);

/* An io over contexts of its own into the layer below, shared by every
 * connection (nbdkit_next_context_open with shared set), for a filter
 * that serves one image to all of them: opened read-only, and
 * io_make_writable opens a second, writable context (EROFS where the
 * layer below cannot be written).  io_close finalizes and closes both.
 * serialize: the plugin below must see one request at a time (a
 * thread model other than parallel); calls are then serialized here.
 * Returns NULL after reporting the cause.
 */
extern struct io *io_next_open_shared (nbdkit_backend *backend,
                                       const char *exportname,
                                       const char *name, bool serialize);

#endif /* IO_NEXT_H */
