/* Unit test of the buffer pool (buffer-pool.h): buffers given back
 * are reused, at most max_free are kept, and many threads may take and
 * give back at once (the sanitizer build checks for leaks and races).
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

int
main (void)
{
  struct buffer_pool *p = buffer_pool_create (SIZE, 2);
  void *a, *b, *c, *again;
  pthread_t t[THREADS];

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
