/* Rounding to powers of two. */
#ifndef ROUNDING_H
#define ROUNDING_H

#include <stdbool.h>
#include <stdint.h>

/* n must be a power of two. */
#define ROUND_DOWN(x, n) ((x) & ~((__typeof__ (x)) (n) - 1))
#define ROUND_UP(x, n) (((x) + (n) - 1) & ~((__typeof__ (x)) (n) - 1))
#define IS_ALIGNED(x, n) (((x) & ((n) - 1)) == 0)
#define DIV_ROUND_UP(x, n) (((x) + (n) - 1) / (n))

static inline bool
is_power_of_2 (uint64_t v)
{
  return v && (v & (v - 1)) == 0;
}

#endif /* ROUNDING_H */
