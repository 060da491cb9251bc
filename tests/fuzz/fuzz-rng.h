/* The fuzzing harnesses' choices: splitmix64, seeded with FNV-1a of
 * the input, so that a run is reproducible from the input alone.
 */
#ifndef FUZZ_RNG_H
#define FUZZ_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
  uint64_t s;
};

static inline void
rng_seed (struct rng *r, const uint8_t *data, size_t size)
{
  uint64_t h = UINT64_C (0xcbf29ce484222325);

  for (size_t i = 0; i < size; i++)
    h = (h ^ data[i]) * UINT64_C (0x100000001b3);
  r->s = h;
}

static inline uint64_t
rng_next (struct rng *r)
{
  uint64_t z = (r->s += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* A number in [0, n), n > 0. */
static inline uint64_t
rng_below (struct rng *r, uint64_t n)
{
  return rng_next (r) % n;
}

#endif /* FUZZ_RNG_H */
