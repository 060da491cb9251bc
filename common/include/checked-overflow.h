/* Arithmetic on values read from hostile images: every sum and product
 * that could wrap goes through these, which return true on overflow.
 */
#ifndef CHECKED_OVERFLOW_H
#define CHECKED_OVERFLOW_H

#include <stdbool.h>
#include <stdint.h>

#define ADD_OVERFLOW(a, b, r) __builtin_add_overflow ((a), (b), (r))
#define MUL_OVERFLOW(a, b, r) __builtin_mul_overflow ((a), (b), (r))
#define SUB_OVERFLOW(a, b, r) __builtin_sub_overflow ((a), (b), (r))

/* True if [offset, offset + len) lies inside [0, limit). */
static inline bool
range_within (uint64_t offset, uint64_t len, uint64_t limit)
{
  uint64_t end;

  if (ADD_OVERFLOW (offset, len, &end))
    return false;
  return end <= limit;
}

#endif /* CHECKED_OVERFLOW_H */
