/* A seeded pseudo-random sequence for tests: xorshift64*, the same
 * from the same seed on every platform.
 */
#ifndef SEEDED_RANDOM_H
#define SEEDED_RANDOM_H

#include <stdint.h>

/* The state: any value but 0. */
static inline uint64_t
test_random (uint64_t *state)
{
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * UINT64_C (2685821657736338717);
}

/* Below n (n > 0). */
static inline uint64_t
test_random_below (uint64_t *state, uint64_t n)
{
  return test_random (state) % n;
}

#endif /* SEEDED_RANDOM_H */
