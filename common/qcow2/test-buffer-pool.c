/* Unit test of the buffer pool (buffer-pool.h): buffers given back
 * are reused, no more are kept than the byte budget and the count
 * bounds allow (the engine's pools, as the plugin manual's LIMITS give
 * them), and many threads may take and give back at once (the
 * sanitizer build checks for leaks and races).
 */
#include <config.h>

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buffer-pool.h"

#define SIZE 1000
#define THREADS 8
#define ROUNDS 20000

static void *
churn (void *pool)
{
  for (int i = 0; i < ROUNDS; i++) {
    unsigned char *a = buffer_pool_get (pool), *b = buffer_pool_get (pool);

    assert (a && b && a != b);
    memset (a, i, SIZE);          /* the whole size is ours to use */
    memset (b, i, SIZE);
    buffer_pool_put (pool, a);
    buffer_pool_put (pool, b);
  }
  return NULL;
}

/* How many buffers of size bytes a pool of max_bytes keeps: take more
 * than it could, give them all back, count.
 */
static size_t
kept_of (size_t size, size_t max_bytes)
{
  struct buffer_pool *p = buffer_pool_create (size, max_bytes);
  void *b[BUFFER_POOL_MAX_KEPT + 1];
  size_t n;

  assert (p);
  for (size_t i = 0; i <= BUFFER_POOL_MAX_KEPT; i++)
    assert ((b[i] = buffer_pool_get (p)) != NULL);
  for (size_t i = 0; i <= BUFFER_POOL_MAX_KEPT; i++)
    buffer_pool_put (p, b[i]);
  n = buffer_pool_kept (p);
  buffer_pool_destroy (p);
  return n;
}

int
main (void)
{
  const size_t K = 1024, M = K * K, budget = 8 * M;  /* image.c's */
  struct buffer_pool *p = buffer_pool_create (SIZE, 2 * SIZE);
  void *a, *b, *c, *again;
  pthread_t t[THREADS];

  /* The engine's pools: compressed input (two clusters) and clusters,
   * at 512 B, 64 KiB and 2 MiB clusters.
   */
  assert (kept_of (2 * 64 * K, budget) == 64);
  assert (kept_of (64 * K, budget) == 64);       /* 128 fit: the count cap */
  assert (kept_of (2 * 2 * M, budget) == 2);
  assert (kept_of (2 * M, budget) == 4);
  assert (kept_of (1024, budget) == 64);
  assert (kept_of (16 * M, budget) == 2);       /* none fit: the floor */

  assert (p);
  assert (buffer_pool_kept (p) == 0);
  a = buffer_pool_get (p);
  b = buffer_pool_get (p);
  c = buffer_pool_get (p);
  assert (a && b && c && a != b && b != c && a != c);

  /* Two kept, the third freed; NULL is ignored. */
  buffer_pool_put (p, a);
  buffer_pool_put (p, b);
  buffer_pool_put (p, c);
  buffer_pool_put (p, NULL);
  assert (buffer_pool_kept (p) == 2);

  /* Kept buffers come back before new ones are made. */
  again = buffer_pool_get (p);
  assert (again == a || again == b);
  assert (buffer_pool_kept (p) == 1);
  buffer_pool_put (p, again);

  for (int i = 0; i < THREADS; i++)
    assert (pthread_create (&t[i], NULL, churn, p) == 0);
  for (int i = 0; i < THREADS; i++)
    assert (pthread_join (t[i], NULL) == 0);
  assert (buffer_pool_kept (p) == 2);

  buffer_pool_destroy (p);        /* frees the kept ones */
  buffer_pool_destroy (NULL);
  return 0;
}
