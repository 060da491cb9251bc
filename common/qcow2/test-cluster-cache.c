/* Unit test of the decompressed-cluster cache (cluster-cache.h): hits
 * copy the right bytes, invalidation drops exactly the overlapping
 * entries, an insert that started before an invalidation is refused,
 * and the capacity bound holds.
 */
#include <config.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-cache.h"

#define CS 4096

static unsigned char *
cluster_of (int fill)
{
  unsigned char *p = malloc (CS);

  assert (p);
  memset (p, fill, CS);
  return p;
}

/* Insert a cluster filled with `fill` under key (host, len). */
static void
put (struct cluster_cache *c, uint64_t epoch, uint64_t host, uint64_t len,
     int fill)
{
  unsigned char *p = cluster_of (fill);

  cluster_cache_insert (c, epoch, host, len, &p);
  free (p);                     /* the evicted buffer, or ours if refused */
}

static int
get (struct cluster_cache *c, uint64_t host, uint64_t len)
{
  unsigned char b[16];

  if (!cluster_cache_read (c, host, len, b, CS - sizeof b, sizeof b))
    return -1;
  return b[0];
}

int
main (void)
{
  struct cluster_cache *c = cluster_cache_create (CS, 64 * CS);
  uint64_t e;

  assert (c);
  assert (cluster_cache_capacity (c) == 64 * CS);

  /* Hit and miss; the key is offset and length together. */
  put (c, cluster_cache_epoch (c), 1000, 600, 'a');
  assert (get (c, 1000, 600) == 'a');
  assert (get (c, 1000, 512) == -1);
  assert (get (c, 1001, 600) == -1);

  /* Invalidation drops overlapping entries only. */
  put (c, cluster_cache_epoch (c), 5000, 100, 'b');
  cluster_cache_invalidate (c, 1599, 1);        /* last byte of 'a' */
  assert (get (c, 1000, 600) == -1);
  assert (get (c, 5000, 100) == 'b');
  cluster_cache_invalidate (c, 4000, 1000);     /* ends just before 'b' */
  assert (get (c, 5000, 100) == 'b');
  cluster_cache_invalidate (c, 5099, 10);
  assert (get (c, 5000, 100) == -1);

  /* A reader that mapped before an invalidation cannot insert. */
  e = cluster_cache_epoch (c);
  cluster_cache_invalidate (c, 1 << 20, 1);
  put (c, e, 7000, 100, 'c');
  assert (get (c, 7000, 100) == -1);
  put (c, cluster_cache_epoch (c), 7000, 100, 'c');
  assert (get (c, 7000, 100) == 'c');

  /* A second insert of a cached key keeps the first. */
  put (c, cluster_cache_epoch (c), 7000, 100, 'd');
  assert (get (c, 7000, 100) == 'c');

  /* Never more entries than the capacity: of 1000 inserted, at most
   * 64 are found, and the newest is.
   */
  {
    unsigned found = 0;

    for (uint64_t i = 0; i < 1000; i++)
      put (c, cluster_cache_epoch (c), 100000 + i * 600, 600, (int) (i & 0x7f));
    for (uint64_t i = 0; i < 1000; i++)
      found += get (c, 100000 + i * 600, 600) == (int) (i & 0x7f);
    assert (found > 0 && found <= 64);
    assert (get (c, 100000 + 999 * 600, 600) == (999 & 0x7f));
  }
  cluster_cache_destroy (c);

  /* Tiny budget: still one entry per shard; 2 MiB clusters, 16 MiB. */
  c = cluster_cache_create (2 << 20, 1);
  assert (c && cluster_cache_capacity (c) == 8 * (2 << 20));
  cluster_cache_destroy (c);
  c = cluster_cache_create (512, 16 << 20);
  assert (c && cluster_cache_capacity (c) == 8 * 32 * 512);
  cluster_cache_destroy (c);

  printf ("test-cluster-cache: ok\n");
  return 0;
}
