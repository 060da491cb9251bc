/* Debug messages by category (QCOW2_DEBUG_* in qcow2.h): the caller's
 * print function receives them; image_debug tests the flag first.
 */
#include <config.h>

#include <stdarg.h>

#include "internal.h"

void
debug_print (const struct qcow2_debug *d, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  d->print (fs, args);
  va_end (args);
}
