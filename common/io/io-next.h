/* A struct io over nbdkit's next layer, used only while unlocking (the
 * header and key areas are read through it); requests go straight to
 * next->pread/pwrite afterwards.
 */
#ifndef LUKS_IO_NEXT_H
#define LUKS_IO_NEXT_H

#include <nbdkit-filter.h>

#include "io.h"

struct io_next {
  struct io io;
  nbdkit_next *next;
};

/* Valid while next is. */
extern void io_next_init (struct io_next *n, nbdkit_next *next,
                          const char *name);

#endif /* LUKS_IO_NEXT_H */
