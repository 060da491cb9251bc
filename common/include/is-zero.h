/* Fast test for an all-zero buffer. */
#ifndef IS_ZERO_H
#define IS_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool
is_zero (const void *buf, size_t size)
{
  const unsigned char *p = buf;
  size_t i, limit = size < 16 ? size : 16;

  /* Check the head by hand, then compare the buffer with itself shifted:
   * if the first 16 bytes are zero and buf[i] == buf[i + 16] for all i,
   * everything is zero.
   */
  for (i = 0; i < limit; i++)
    if (p[i])
      return false;
  return size <= 16 || memcmp (p, p + 16, size - 16) == 0;
}

#endif /* IS_ZERO_H */
