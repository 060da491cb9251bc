/* A struct io over nbdkit's next layer, for filters: an engine in
 * common/ reads and writes the layer below through it (the luks filter
 * its header and key areas while unlocking).
 *
 * Glue, not engine: it is built into the filters that use it
 * (libio-next.la, compiled with nbdkit's flags), and io.h, which the
 * engines include, stays free of nbdkit types.
 */
#ifndef IO_NEXT_H
#define IO_NEXT_H

#include <nbdkit-filter.h>

#include "io.h"

struct io_next {
  struct io io;
  nbdkit_next *next;
};

/* Valid while next is. */
extern void io_next_init (struct io_next *n, nbdkit_next *next,
                          const char *name);

#endif /* IO_NEXT_H */
