/* Diagnostics from the libraries in common/.
 *
 * The libraries know nothing about nbdkit: they report through these
 * functions, and the module glue routes them to nbdkit_verror and
 * nbdkit_vdebug.  Unit tests get stderr.  The rule everywhere is one
 * message, at the point where the cause is known, then return -1 with
 * errno set.
 */
#ifndef DIAG_H
#define DIAG_H

#include <stdarg.h>

typedef void (*diag_fn) (const char *fs, va_list args);

/* Route messages; NULL restores the default (stderr / nothing). */
extern void diag_set_handlers (diag_fn error, diag_fn debug);

extern void diag_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void diag_debug (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

#endif /* DIAG_H */
