/* Preloaded after libasan into nbdkit in the sanitizer build (see
 * functions.sh).  nbdkit is not instrumented, so the ASan runtime
 * initializes lazily on the first malloc.  The first malloc comes from
 * p11-kit's constructor, inside newlocale() while glibc holds its
 * locale lock for writing; ASan's initialization then takes and drops
 * the same lock (dlerror -> dcgettext), which leaves it corrupt, and
 * the next newlocale/freelocale/strerror in nbdkit hangs forever.
 * Interposing newlocale makes that first malloc happen before the lock
 * is taken.  Not instrumented itself.
 */
#include <config.h>

#include <locale.h>
#include <stdlib.h>

extern locale_t __newlocale (int mask, const char *name, locale_t base);

locale_t
newlocale (int mask, const char *name, locale_t base)
{
  void *volatile p = malloc (1);        /* volatile: keep the call */

  free (p);
  return __newlocale (mask, name, base);
}
