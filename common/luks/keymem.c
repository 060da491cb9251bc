/* Locked, wiped memory for secrets (see keymem.h).
 *
 * Each allocation is its own anonymous mapping so that mlock and
 * MADV_DONTDUMP apply to whole pages that hold nothing else.  A small
 * header in front of the returned pointer remembers the mapping size.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "checked-overflow.h"
#include "diag.h"
#include "keymem.h"
#include "rounding.h"

struct keymem_header {
  size_t map_len;
  bool locked;
} __attribute__ ((aligned (16)));

void *
keymem_alloc (size_t len)
{
  size_t page = sysconf (_SC_PAGESIZE);
  size_t map_len;
  struct keymem_header *h;

  if (ADD_OVERFLOW (len, sizeof *h, &map_len) ||
      ADD_OVERFLOW (map_len, page - 1, &map_len)) {
    diag_error ("luks: key memory of %zu bytes is too large", len);
    errno = ENOMEM;
    return NULL;
  }
  map_len = ROUND_DOWN (map_len, page);

  h = mmap (NULL, map_len, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (h == MAP_FAILED) {
    diag_error ("luks: cannot allocate key memory: %m");
    return NULL;
  }
  h->map_len = map_len;
  /* Not fatal: an unprivileged process may have a small RLIMIT_MEMLOCK. */
  h->locked = mlock (h, map_len) == 0;
  if (!h->locked)
    diag_debug ("luks: could not lock %zu bytes of key memory: %m", map_len);
  madvise (h, map_len, MADV_DONTDUMP);
  return h + 1;
}

void
keymem_free (void *p)
{
  struct keymem_header *h;
  size_t map_len;

  if (p == NULL)
    return;
  h = (struct keymem_header *) p - 1;
  map_len = h->map_len;
  explicit_bzero (h, map_len);
  if (h->locked)
    munlock (h, map_len);
  munmap (h, map_len);
}

void *
keymem_dup (const void *src, size_t len)
{
  void *p = keymem_alloc (len);

  if (p && len > 0)
    memcpy (p, src, len);
  return p;
}
